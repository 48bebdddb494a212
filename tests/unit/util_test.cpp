#include <gtest/gtest.h>

#include "deepspeed/util/strings.h"

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
