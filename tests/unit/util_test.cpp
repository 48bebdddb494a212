#include <gtest/gtest.h>

#include <thread>
#include <utility>
#include <vector>

#include "deepspeed/util/strings.h"
#include "src/util/env.h"
#include "src/util/sm_share.h"
#include "tests/support/scoped_env.h"

using deepspeed::util::closest_match;
using deepspeed::util::py_float;

TEST(UtilTest, PythonFloatRepr) {
  EXPECT_EQ(py_float(0.001), "0.001");
  EXPECT_EQ(py_float(1e-05), "1e-05");
  EXPECT_EQ(py_float(0.0001), "0.0001");
  EXPECT_EQ(py_float(1.0), "1.0");
  EXPECT_EQ(py_float(0.9), "0.9");
  EXPECT_EQ(py_float(0.999), "0.999");
  EXPECT_EQ(py_float(123456.789), "123456.789");
  EXPECT_EQ(py_float(1e16), "1e+16");
  EXPECT_EQ(py_float(1234567890123456.0), "1234567890123456.0");
  EXPECT_EQ(py_float(-2.5e-07), "-2.5e-07");
  EXPECT_EQ(py_float(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(py_float(0.0), "0.0");
}

TEST(UtilTest, ClosestMatch) {
  EXPECT_EQ(closest_match("stgae", {"stage", "overlap_comm"}), "stage");
  EXPECT_EQ(closest_match("reduce_bucket", {"reduce_bucket_size", "stage"}), "reduce_bucket_size");
  EXPECT_EQ(closest_match("zzzzzz", {"stage", "overlap_comm"}), "");
}

TEST(UtilTest, EnvCountTakesOnlyAWholeNumber) {
  using deepspeed::util::env_count;
  const char* name = "DS_UTIL_TEST_COUNT";
  {
    const deepspeed::testing::ScopedEnv unset(name, nullptr);
    EXPECT_EQ(env_count(name, 16), 16);
  }
  for (const auto& [value, expected] : std::vector<std::pair<const char*, int>>{
           {"0", 0}, {"32", 32}, {"007", 7}, {"", 16}, {"-1", 16}, {"8 ", 16}, {"1e3", 16}, {"9999999", 16}}) {
    const deepspeed::testing::ScopedEnv env(name, value);
    EXPECT_EQ(env_count(name, 16), expected) << "'" << value << "'";
  }
}

TEST(UtilTest, SideStreamSmsAreScopedAndPerThread) {
  using namespace deepspeed::util;
  EXPECT_EQ(side_stream_sms(), 0);
  {
    const ScopedSideStreamSms outer(16);
    {
      const ScopedSideStreamSms inner(0);
      EXPECT_EQ(side_stream_sms(), 0);
    }
    EXPECT_EQ(side_stream_sms(), 16);
    int seen_elsewhere = -1;
    std::thread([&] { seen_elsewhere = side_stream_sms(); }).join();
    EXPECT_EQ(seen_elsewhere, 0);
  }
  EXPECT_EQ(side_stream_sms(), 0);
  set_reserved_sms(8);
  int reserved_elsewhere = -1;
  std::thread([&] { reserved_elsewhere = reserved_sms(); }).join();
  EXPECT_EQ(reserved_sms(), 8);
  EXPECT_EQ(reserved_elsewhere, 0);
  set_reserved_sms(0);
}
