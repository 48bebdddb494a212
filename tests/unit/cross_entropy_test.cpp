// deepspeed::ops::cross_entropy on the CPU: the reference, exactly (the CUDA kernel: cross_entropy_gpu_test).
#include <cmath>
#include <cstdlib>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include "deepspeed/ops/cross_entropy.h"
#include "tests/unit/cross_entropy_helpers.h"

namespace {

namespace ops = deepspeed::ops;
using deepspeed::ops::testing::loss_and_grad;

TEST(CrossEntropyCpu, FallsBackToTheReference) {
  at::manual_seed(0);
  const auto logits = at::randn({6, 11});
  const auto targets = at::randint(0, 11, {6}, at::kLong);
  EXPECT_FALSE(ops::cross_entropy_is_fused(logits, targets));
  const auto a = loss_and_grad(ops::cross_entropy, logits, targets);
  const auto b = loss_and_grad([](const at::Tensor& x, const at::Tensor& t) { return at::cross_entropy_loss(x, t); }, logits, targets);
  EXPECT_DOUBLE_EQ(a.loss, b.loss);
  EXPECT_TRUE(at::equal(a.grad, b.grad));
}

}  // namespace
