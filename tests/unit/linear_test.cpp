// ops::linear on the CPU is at::linear (its reference), and it rejects mismatched shapes with a UsageError; the
// values DS_GEMM_TUNED takes.
#include <cstdio>
#include <cstdlib>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "deepspeed/ops/linear.h"
#include "deepspeed/util/error.h"
#include "src/ops/linear_gemms.h"

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

// DS_GEMM_TUNED: unset, 1 or an unknown value the exact timed choice (the heuristic's bits), any the fastest of
// all, 0 none; never a timed choice in a build without cuBLASLt (where =any gives none either).
TEST(Linear, GemmTunedSwitchValues) {
  using ops::detail::LtChoice;
  setenv("DS_GEMM_TUNED", "any", 1);
  const bool built = ops::detail::tuned_gemm_choice() == LtChoice::kTimed;
  const LtChoice on = built ? LtChoice::kTimedExact : LtChoice::kHeuristic;
  std::printf("[linear] timed GEMM choices %s\n", built ? "built" : "not built (no cuBLASLt header)");
  unsetenv("DS_GEMM_TUNED");
  EXPECT_EQ(ops::detail::tuned_gemm_choice(), on) << "the default";
  EXPECT_EQ(ops::detail::gemm_tuning_requested(), built);
  for (const char* value : {"1", "yes"}) {
    setenv("DS_GEMM_TUNED", value, 1);
    EXPECT_EQ(ops::detail::tuned_gemm_choice(), on) << value;
  }
  setenv("DS_GEMM_TUNED", "0", 1);
  EXPECT_EQ(ops::detail::tuned_gemm_choice(), LtChoice::kHeuristic);
  EXPECT_FALSE(ops::detail::gemm_tuning_requested());
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
