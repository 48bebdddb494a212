// The monitors' file formats: CSV exactly as DeepSpeed's csv_monitor writes it, TensorBoard event files framed
// as TFRecords with valid CRC32C (tests/monitor/check_events.py reads an engine run's file back with Python's
// tensorboard), and no sinks and no files on ranks other than 0.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "deepspeed/monitor/monitor.h"
#include "src/monitor/record_writer.h"

namespace deepspeed::monitor {
namespace {

namespace fs = std::filesystem;

std::string read_all(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("ds_monitor_test_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

config::MonitorSinkConfig sink_config(const fs::path& dir, const std::string& job) {
  config::MonitorSinkConfig c;
  c.enabled = true;
  c.output_path = dir.string();
  c.job_name = job;
  return c;
}

TEST(Crc32c, KnownCheckValues) {
  // The CRC-32C check value (RFC 3720 / the Castagnoli catalogue) and an empty input.
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(crc32c(""), 0u);
  // Masking is TFRecord's: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
  const std::uint32_t crc = 0xE3069283u;
  EXPECT_EQ(masked_crc32c("123456789"), ((crc >> 15) | (crc << 17)) + 0xa282ead8u);
}

TEST(CsvSink, DeepSpeedLayoutHeaderOnceCrlf) {
  TempDir tmp;
  auto sink = make_csv_sink(sink_config(tmp.path, "run1"));
  sink->write({{"Train/Samples/train_loss", 2.5, 16}, {"Train/Samples/lr", 0.001, 16}});
  sink->write({{"Train/Samples/train_loss", 1.25, 32}});
  const fs::path dir = tmp.path / "run1";
  EXPECT_EQ(sink->location(), dir.string());
  EXPECT_EQ(read_all(dir / "Train_Samples_train_loss.csv"), "step,train_loss\r\n16,2.5\r\n32,1.25\r\n");
  EXPECT_EQ(read_all(dir / "Train_Samples_lr.csv"), "step,lr\r\n16,0.001\r\n");
  // A second sink (a restarted job) appends without a second header only within one process: DeepSpeed writes
  // the header once per process and file, so a resumed run repeats it.
  auto again = make_csv_sink(sink_config(tmp.path, "run1"));
  again->write({{"Train/Samples/lr", 0.5, 48}});
  EXPECT_EQ(read_all(dir / "Train_Samples_lr.csv"), "step,lr\r\n16,0.001\r\nstep,lr\r\n48,0.5\r\n");
}

// Splits a TFRecord file into its records, checking both CRCs of each.
std::vector<std::string> read_records(const std::string& bytes) {
  std::vector<std::string> records;
  std::size_t at = 0;
  while (at < bytes.size()) {
    EXPECT_GE(bytes.size() - at, 12u);
    std::uint64_t length = 0;
    std::uint32_t length_crc = 0, data_crc = 0;
    std::memcpy(&length, bytes.data() + at, 8);
    std::memcpy(&length_crc, bytes.data() + at + 8, 4);
    EXPECT_EQ(length_crc, masked_crc32c(std::string_view(bytes.data() + at, 8)));
    const std::string data = bytes.substr(at + 12, length);
    std::memcpy(&data_crc, bytes.data() + at + 12 + length, 4);
    EXPECT_EQ(data_crc, masked_crc32c(data));
    records.push_back(data);
    at += 12 + length + 4;
  }
  return records;
}

TEST(RecordWriter, FramesRecordsWithMaskedCrcs) {
  TempDir tmp;
  const auto path = (tmp.path / "records").string();
  {
    RecordWriter writer(path);
    writer.append("first");
    writer.append(std::string(300, 'x'));
    writer.append("");
    writer.flush();
  }
  const auto records = read_records(read_all(path));
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0], "first");
  EXPECT_EQ(records[1], std::string(300, 'x'));
  EXPECT_EQ(records[2], "");
}

TEST(TensorBoardSink, OneEventFilePerRunAHeaderAndAnEventPerScalar) {
  TempDir tmp;
  std::unique_ptr<Sink> sink;
  try {
    sink = make_tensorboard_sink(sink_config(tmp.path, "tb"));
  } catch (const std::exception& e) {
    GTEST_SKIP() << "this build has no TensorBoard writer: " << e.what();
  }
  sink->write({{"Train/Samples/train_loss", 2.5, 16}, {"Train/Samples/lr", 0.001, 16}});
  sink->write({{"Train/Samples/train_loss", 1.25, 32}});
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(tmp.path / "tb")) files.push_back(entry.path());
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].filename().string().rfind("events.out.tfevents.", 0), 0u) << files[0];
  // Flushed per write: readable while the sink is still open (TensorBoard reads live runs).
  const auto records = read_records(read_all(files[0]));
  ASSERT_EQ(records.size(), 4u);  // the file_version header, then one event per scalar
  EXPECT_NE(records[0].find("brain.Event:2"), std::string::npos);
  EXPECT_NE(records[1].find("Train/Samples/train_loss"), std::string::npos);
  EXPECT_NE(records[2].find("Train/Samples/lr"), std::string::npos);
}

TEST(Monitor, OnlyRankZeroHasSinksAndFiles) {
  TempDir tmp;
  config::Config c;
  c.csv_monitor = sink_config(tmp.path, "csv");
  Monitor other = Monitor::from_config(c, /*rank=*/1);
  EXPECT_FALSE(other.enabled());
  other.write({{"Train/Samples/lr", 1.0, 1}});
  EXPECT_FALSE(fs::exists(tmp.path / "csv"));
  Monitor rank0 = Monitor::from_config(c, 0);
  ASSERT_TRUE(rank0.enabled());
  rank0.write({{"Train/Samples/lr", 1.0, 1}});
  EXPECT_TRUE(fs::exists(tmp.path / "csv" / "Train_Samples_lr.csv"));
  // Nothing enabled: no sink on any rank.
  EXPECT_FALSE(Monitor::from_config(config::Config{}, 0).enabled());
}

TEST(Monitor, UnwritableOutputPathIsAUsageErrorNamingIt) {
  TempDir tmp;
  const fs::path blocker = tmp.path / "file";
  std::ofstream(blocker) << "x";
  try {
    make_csv_sink(sink_config(blocker, "job"));
    FAIL() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("csv_monitor.output_path"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(blocker.string()), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace deepspeed::monitor
