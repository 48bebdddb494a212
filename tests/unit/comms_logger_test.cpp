// The comms logger's arithmetic (nccl-tests bandwidths, DeepSpeed's size strings and trimmed mean) and its
// summary table, from records appended directly; tests/unit/zero_reducer_test.cpp checks what a real reducer
// run records against its bucket plan.
#include <gtest/gtest.h>

#include "deepspeed/comm/comms_logger.h"

namespace deepspeed::comm {
namespace {

TEST(CollectiveBandwidth, NcclTestsFactors) {
  // 125,000,000 bytes in one second: 1 Gbit/s algorithmic bandwidth.
  const std::int64_t bytes = 125'000'000;
  for (int n : {2, 4, 8}) {
    const double f = (n - 1.0) / n;
    EXPECT_DOUBLE_EQ(collective_bandwidth("all_reduce", bytes, 1000.0, n).algbw_gbps, 1.0);
    EXPECT_DOUBLE_EQ(collective_bandwidth("all_reduce", bytes, 1000.0, n).busbw_gbps, 2.0 * f);
    EXPECT_DOUBLE_EQ(collective_bandwidth("all_gather_into_tensor", bytes, 1000.0, n).busbw_gbps, f);
    EXPECT_DOUBLE_EQ(collective_bandwidth("reduce_scatter_tensor", bytes, 1000.0, n).busbw_gbps, f);
    EXPECT_DOUBLE_EQ(collective_bandwidth("broadcast", bytes, 1000.0, n).busbw_gbps, 1.0);
  }
  EXPECT_DOUBLE_EQ(collective_bandwidth("all_reduce", bytes, 250.0, 2).algbw_gbps, 4.0);
  EXPECT_DOUBLE_EQ(collective_bandwidth("barrier", 0, 0.5, 2).algbw_gbps, 0.0);
  EXPECT_DOUBLE_EQ(collective_bandwidth("all_reduce", bytes, 0.0, 2).algbw_gbps, 0.0);  // no division by zero
}

TEST(ConvertSize, DeepSpeedsStrings) {
  EXPECT_EQ(convert_size(0), "0B");
  EXPECT_EQ(convert_size(4), "4.0 B");
  EXPECT_EQ(convert_size(1000), "1000.0 B");
  EXPECT_EQ(convert_size(1536), "1.5 KB");
  EXPECT_EQ(convert_size(3 * 1024 * 1024 + 262144), "3.25 MB");
  EXPECT_EQ(convert_size(std::int64_t{5} << 30), "5.0 GB");
  EXPECT_EQ(convert_size(1023), "1023.0 B");
}

TEST(TrimmedMean, DropsTenPercentEachEndWithPythonsRounding) {
  std::vector<double> ten = {100, 1, 2, 3, 4, 5, 6, 7, 8, 9};  // k = 1: drops 1 and 100
  EXPECT_DOUBLE_EQ(trimmed_mean(ten), 5.5);
  EXPECT_DOUBLE_EQ(trimmed_mean({1, 2, 3, 100}), 26.5);  // k = round(0.4) = 0
  // n = 25: round(2.5) = 2 (to even), so 2 values go from each end.
  std::vector<double> v;
  for (int i = 1; i <= 25; ++i) v.push_back(i);
  v.back() = 1000;
  EXPECT_DOUBLE_EQ(trimmed_mean(v), (3.0 + 23.0) / 2.0);
  EXPECT_DOUBLE_EQ(trimmed_mean({}), 0.0);
}

config::CommsLoggerConfig all_ops(bool debug = false) {
  config::CommsLoggerConfig c;
  c.enabled = true;
  c.prof_all = true;
  c.debug = debug;
  return c;
}

TEST(CommsLogger, SummaryRowsPerRecordAndSize) {
  CommsLogger logger(all_ops(), /*world_size=*/2, /*rank=*/0);
  logger.append("all_reduce", "all_reduce", 4096, 2.0);
  logger.append("all_reduce", "all_reduce", 1024, 1.0);
  logger.append("all_reduce", "all_reduce", 4096, 4.0);
  logger.append("broadcast", "broadcast", 8, 0.5);
  const auto rows = logger.summary();
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].record, "all_reduce");
  EXPECT_EQ(rows[0].bytes, 1024);  // sizes ascending within a record
  EXPECT_EQ(rows[1].bytes, 4096);
  EXPECT_EQ(rows[1].count, 2);
  EXPECT_DOUBLE_EQ(rows[1].total_ms, 6.0);
  EXPECT_DOUBLE_EQ(rows[1].avg_ms, 3.0);
  EXPECT_DOUBLE_EQ(rows[1].algbw_gbps, (4096 / 2.0 * 8 / 1e6 + 4096 / 4.0 * 8 / 1e6) / 2);
  EXPECT_EQ(rows[2].record, "broadcast");
  EXPECT_EQ(logger.total_operations(), 4);

  const std::string table = logger.summary_table();
  EXPECT_EQ(table.rfind("Comm. Op            Message Size        Count               Total Latency(ms)   "
                        "Avg Latency(ms)     tput_avg (Gbps)     busbw_avg (Gbps)    \n",
                        0),
            0u)
      << table;
  EXPECT_NE(table.find("\nall_reduce\n                    1.0 KB              1                   1.00"),
            std::string::npos)
      << table;
  EXPECT_NE(table.find("\nbroadcast\n                    8.0 B               1                   0.50"),
            std::string::npos)
      << table;
  logger.reset();
  EXPECT_EQ(logger.total_operations(), 0);
}

TEST(CommsLogger, ProfOpsSelectsAndRuntimeSwitches) {
  config::CommsLoggerConfig c;
  c.enabled = true;
  c.prof_all = false;
  c.prof_ops = {"all_reduce"};
  CommsLogger logger(c, 2, 0);
  EXPECT_TRUE(logger.profiles("all_reduce"));
  EXPECT_FALSE(logger.profiles("broadcast"));
  logger.start_profiling_op({"broadcast"});
  EXPECT_TRUE(logger.profiles("broadcast"));
  logger.stop_profiling_op({"all_reduce"});
  EXPECT_FALSE(logger.profiles("all_reduce"));
  logger.start_profiling_comms();
  EXPECT_TRUE(logger.profiles("reduce_scatter_tensor"));
  logger.stop_profiling_comms();
  EXPECT_FALSE(logger.profiles("reduce_scatter_tensor"));
}

TEST(CommsLogger, DebugNamesTheCaller) {
  CommsLogger logger(all_ops(/*debug=*/true), 2, 0);
  {
    CallerScope scope("BucketReducer");
    EXPECT_STREQ(CallerScope::current(), "BucketReducer");
  }
  EXPECT_EQ(CallerScope::current(), nullptr);
}

}  // namespace
}  // namespace deepspeed::comm
