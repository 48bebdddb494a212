// deepspeed::ops::bias_gelu on the CPU (the reference path): against the closed form in double, against the
// unfused `gelu(x + bias)` autograd composition in fp32, the bias gradient as Σ_rows dx, a 16-bit input with an
// fp32 bias, and its argument errors. The CUDA kernels: bias_gelu_gpu_test.
#include <cmath>
#include <cstdlib>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "deepspeed/ops/bias_gelu.h"
#include "deepspeed/util/error.h"

namespace {

namespace ops = deepspeed::ops;

// GELU (tanh) and its derivative, written out in double.
double gelu(double h) { return 0.5 * h * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (h + 0.044715 * h * h * h))); }
double gelu_grad(double h) {
  const double k = std::sqrt(2.0 / M_PI), t = std::tanh(k * (h + 0.044715 * h * h * h));
  return 0.5 * (1.0 + t) + 0.5 * h * (1.0 - t * t) * k * (1.0 + 3.0 * 0.044715 * h * h);
}

TEST(BiasGelu, ClosedFormInDouble) {
  at::manual_seed(1);
  auto x = (2.0 * at::randn({5, 7}, at::kDouble)).requires_grad_(true);
  auto b = at::randn({7}, at::kDouble).requires_grad_(true);
  const auto dy = at::randn({5, 7}, at::kDouble);
  const at::Tensor y = ops::bias_gelu(x, b);
  y.backward(dy);
  const auto xa = x.accessor<double, 2>(), ya = y.accessor<double, 2>(), da = dy.accessor<double, 2>();
  const auto ba = b.accessor<double, 1>(), gba = b.grad().accessor<double, 1>();
  const auto gxa = x.grad().accessor<double, 2>();
  for (int c = 0; c < 7; ++c) {
    double db = 0.0;
    for (int r = 0; r < 5; ++r) {
      const double h = xa[r][c] + ba[c];
      EXPECT_NEAR(ya[r][c], gelu(h), 1e-13);
      EXPECT_NEAR(gxa[r][c], da[r][c] * gelu_grad(h), 1e-12);
      db += da[r][c] * gelu_grad(h);
    }
    EXPECT_NEAR(gba[c], db, 1e-12);
  }
}

TEST(BiasGelu, EqualsTheUnfusedCompositionInFp32) {
  at::manual_seed(2);
  const auto x0 = at::randn({2, 3, 64}), b0 = at::randn({64}), dy = at::randn({2, 3, 64});
  auto x1 = x0.clone().requires_grad_(true), b1 = b0.clone().requires_grad_(true);
  auto x2 = x0.clone().requires_grad_(true), b2 = b0.clone().requires_grad_(true);
  const at::Tensor fused = ops::bias_gelu(x1, b1);
  const at::Tensor unfused = at::gelu(x2 + b2, "tanh");
  fused.backward(dy);
  unfused.backward(dy);
  EXPECT_TRUE(at::equal(fused, unfused));
  EXPECT_TRUE(at::equal(x1.grad(), x2.grad()));
  EXPECT_TRUE(at::allclose(b1.grad(), b2.grad(), 1e-6, 1e-6));
}

TEST(BiasGelu, Bf16InputWithFp32Bias) {
  at::manual_seed(3);
  auto x = at::randn({16, 32}).to(at::kBFloat16).requires_grad_(true);
  auto b = at::randn({32}).requires_grad_(true);  // fp32, as with an fp32 model under a 16-bit activation
  const at::Tensor y = ops::bias_gelu(x, b);
  EXPECT_EQ(y.scalar_type(), at::kBFloat16);
  // h is x + bias rounded to bf16, then GELU in fp32, rounded once.
  const at::Tensor h = (x.detach().to(at::kFloat) + b.detach()).to(at::kBFloat16).to(at::kFloat);
  EXPECT_TRUE(at::equal(y.to(at::kFloat), at::gelu(h, "tanh").to(at::kBFloat16).to(at::kFloat)));
  const auto dy = at::randn({16, 32}).to(at::kBFloat16);
  y.backward(dy);
  EXPECT_EQ(x.grad().scalar_type(), at::kBFloat16);
  EXPECT_EQ(b.grad().scalar_type(), at::kFloat);
  EXPECT_TRUE(at::allclose(b.grad(), x.grad().to(at::kFloat).sum(0), 1e-5, 1e-5));
}

TEST(BiasGelu, ArgumentErrors) {
  const auto x = at::randn({4, 8});
  EXPECT_THROW(ops::bias_gelu(x, at::randn({7})), deepspeed::UsageError);
  EXPECT_THROW(ops::bias_gelu(x, at::randn({1, 8})), deepspeed::UsageError);
  EXPECT_THROW(ops::bias_gelu(x, at::randn({8}).to(at::kDouble)), deepspeed::UsageError);
  EXPECT_THROW(ops::bias_gelu(at::ones({4, 8}, at::kLong), at::ones({8}, at::kLong)), deepspeed::UsageError);
  EXPECT_THROW(ops::bias_gelu(x, at::Tensor()), deepspeed::UsageError);
  EXPECT_FALSE(ops::bias_gelu_is_fused(x, at::randn({8})));  // a CPU tensor takes the reference
}

}  // namespace
