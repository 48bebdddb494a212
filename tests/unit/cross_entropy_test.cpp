// deepspeed::ops::cross_entropy on the CPU: the reference, exactly (the CUDA kernel: cross_entropy_gpu_test).
#include <cmath>
#include <cstdlib>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include "deepspeed/ops/cross_entropy.h"

namespace {

namespace ops = deepspeed::ops;

struct Result {
  double loss;
  at::Tensor grad;  // fp32
};

// Loss and d(scale · loss)/d(logits) through `fn`.
template <typename Fn>
Result run(Fn fn, const at::Tensor& logits, const at::Tensor& targets, double scale = 1.0) {
  auto x = logits.detach().clone().requires_grad_(true);
  auto loss = fn(x, targets);
  (loss * scale).backward();
  return {loss.template item<double>(), x.grad().to(at::kFloat).cpu()};
}

TEST(CrossEntropyCpu, FallsBackToTheReference) {
  at::manual_seed(0);
  const auto logits = at::randn({6, 11});
  const auto targets = at::randint(0, 11, {6}, at::kLong);
  EXPECT_FALSE(ops::cross_entropy_is_fused(logits, targets));
  const auto a = run(ops::cross_entropy, logits, targets);
  const auto b = run([](const at::Tensor& x, const at::Tensor& t) { return at::cross_entropy_loss(x, t); }, logits, targets);
  EXPECT_DOUBLE_EQ(a.loss, b.loss);
  EXPECT_TRUE(at::equal(a.grad, b.grad));
}

}  // namespace
