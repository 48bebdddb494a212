// ops::gelu_mlp where the epilogue path does not apply (CPU, or not requested): the reference, under autograd,
// equal to the three ATen steps it is made of; mismatched shapes are a UsageError naming what was expected.
#include <cstdlib>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include "deepspeed/ops/gelu_mlp.h"
#include "deepspeed/util/error.h"

namespace deepspeed {
namespace {

TEST(GeluMlp, OnTheCpuIsTheReference) {
  setenv("DS_MLP_EPILOGUE", "1", 1);  // requested, but the CPU has no epilogue path
  at::manual_seed(3);
  const at::Tensor x = at::randn({2, 5, 8}).requires_grad_(true), w1 = at::randn({16, 8}).requires_grad_(true),
                   b1 = at::randn({16}).requires_grad_(true), w2 = at::randn({8, 16}).requires_grad_(true),
                   b2 = at::randn({8}).requires_grad_(true);
  EXPECT_FALSE(ops::gelu_mlp_is_fused(x, w1, b1, w2, b2));
  const at::Tensor y = ops::gelu_mlp(x, w1, b1, w2, b2);
  const at::Tensor expect = at::linear(at::gelu(at::linear(x, w1, b1), "tanh"), w2, b2);
  EXPECT_TRUE(at::equal(y, expect));
  y.sum().backward();
  const auto grads = torch::autograd::grad({expect.sum()}, {x, w1, b1, w2, b2});
  const at::Tensor got[] = {x.grad(), w1.grad(), b1.grad(), w2.grad(), b2.grad()};
  for (std::size_t i = 0; i < grads.size(); ++i) EXPECT_TRUE(at::equal(got[i], grads[i])) << i;
  unsetenv("DS_MLP_EPILOGUE");
}

TEST(GeluMlp, MismatchedShapesAreUsageErrors) {
  const at::Tensor x = at::randn({4, 8}), w1 = at::randn({16, 8}), b1 = at::randn({16}), w2 = at::randn({8, 16}),
                   b2 = at::randn({8});
  EXPECT_THROW(ops::gelu_mlp(x, w1, at::randn({15}), w2, b2), UsageError);
  EXPECT_THROW(ops::gelu_mlp(x, w1, b1, at::randn({8, 15}), b2), UsageError);
  EXPECT_THROW(ops::gelu_mlp(at::randn({4, 7}), w1, b1, w2, b2), UsageError);
  EXPECT_THROW(ops::gelu_mlp(x, w1, b1, w2, at::Tensor()), UsageError);
}

}  // namespace
}  // namespace deepspeed
