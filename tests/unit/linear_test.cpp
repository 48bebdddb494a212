// ops::linear on the CPU is at::linear (its reference), and it rejects mismatched shapes with a UsageError.
#include <cstdlib>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "deepspeed/ops/linear.h"
#include "deepspeed/util/error.h"

namespace deepspeed {
namespace {

TEST(Linear, OnTheCpuIsAtLinear) {
  torch::manual_seed(1);
  const at::Tensor x = torch::randn({3, 4, 8}), w = torch::randn({5, 8}), b = torch::randn({5});
  EXPECT_FALSE(ops::linear_is_fused(x, w, b));
  EXPECT_TRUE(torch::equal(ops::linear(x, w, b), at::linear(x, w, b)));
}

// DS_GEMM_TUNED=1 (and DS_LINEAR_BIAS_KERNEL=1) change nothing on the CPU, with a bias or without.
TEST(Linear, TunedSwitchOnTheCpuIsAtLinear) {
  setenv("DS_GEMM_TUNED", "1", 1);
  setenv("DS_LINEAR_BIAS_KERNEL", "1", 1);
  torch::manual_seed(2);
  const at::Tensor x = torch::randn({3, 4, 8}), w = torch::randn({5, 8}), b = torch::randn({5});
  EXPECT_FALSE(ops::linear_is_tuned(x, w, b));
  EXPECT_FALSE(ops::linear_is_tuned(x, w, at::Tensor()));
  EXPECT_TRUE(torch::equal(ops::linear(x, w, b), at::linear(x, w, b)));
  EXPECT_TRUE(torch::equal(ops::linear(x, w, at::Tensor()), at::linear(x, w)));
  unsetenv("DS_LINEAR_BIAS_KERNEL");
  unsetenv("DS_GEMM_TUNED");
}

TEST(Linear, RejectsMismatchedShapes) {
  const at::Tensor x = torch::randn({3, 8});
  EXPECT_THROW(ops::linear(x, torch::randn({5, 7}), torch::randn({5})), UsageError);
  EXPECT_THROW(ops::linear(x, torch::randn({5, 8}), torch::randn({4})), UsageError);
  EXPECT_THROW(ops::linear(x, at::Tensor(), torch::randn({5})), UsageError);
}

}  // namespace
}  // namespace deepspeed
