// ops::linear's kernel path against at::linear under autograd: y, dx and dW equal (the same GEMMs), the bias
// gradient within the fp32 summation bound bias_gelu's column sums use; bf16/fp16/fp32, a 3-d input, rows
// that are not a multiple of the kernel's row group, odd widths (element loads), no bias, the switch.
#include <cstdio>
#include <cstdlib>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "deepspeed/ops/linear.h"

namespace deepspeed {
namespace {

struct Grads {
  at::Tensor y, dx, dw, db;
};

Grads run(bool ours, at::ScalarType dtype, std::vector<std::int64_t> shape, std::int64_t out) {
  at::manual_seed(9);
  const auto o = at::TensorOptions().device(at::kCUDA).dtype(dtype);
  at::Tensor x = at::randn(shape, o).requires_grad_(true);
  at::Tensor w = (at::randn({out, shape.back()}, o) * 0.05).detach().requires_grad_(true);
  at::Tensor b = at::randn({out}, o).requires_grad_(true);
  at::Tensor y = ours ? ops::linear(x, w, b) : at::linear(x, w, b);
  auto dy_shape = shape;
  dy_shape.back() = out;
  y.backward(at::randn(dy_shape, o));
  return {y.detach(), x.grad(), w.grad(), b.grad()};
}

TEST(Linear, KernelPathMatchesAtLinear) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  for (const auto dtype : {at::kBFloat16, at::kHalf, at::kFloat}) {
    for (const auto& [shape, out] : std::vector<std::pair<std::vector<std::int64_t>, std::int64_t>>{
             {{4, 1024, 768}, 2304}, {{2, 333, 1600}, 1600}, {{7, 64}, 50}, {{1, 1, 8}, 3}}) {
      const auto o = at::TensorOptions().device(at::kCUDA).dtype(dtype);
      ASSERT_TRUE(ops::linear_is_fused(at::empty(shape, o), at::empty({out, shape.back()}, o), at::empty({out}, o)));
      const Grads ours = run(true, dtype, shape, out), ref = run(false, dtype, shape, out);
      EXPECT_TRUE(at::equal(ours.y, ref.y));
      EXPECT_TRUE(at::allclose(ours.dx, ref.dx, 1e-2, 1e-2));  // the same GEMM; allclose in case cuBLAS picks another
      EXPECT_TRUE(at::allclose(ours.dw, ref.dw, 1e-2, 1e-2));
      // Σ_rows dy in fp32 against the fp32 reference of the same dy values, in units of the bias dtype's epsilon.
      const double eps = dtype == at::kBFloat16 ? 7.8125e-3 : dtype == at::kHalf ? 9.765625e-4 : 1.1920929e-7;
      const at::Tensor exact = ref.db.to(at::kDouble);
      const double scale = std::max(exact.abs().max().item<double>(), 1.0);
      const double err = (ours.db.to(at::kDouble) - exact).abs().max().item<double>() / scale / eps;
      std::printf("[linear] %s rows=%lld out=%lld: bias gradient %.2f eps from LibTorch's sum\n", c10::toString(dtype),
                  static_cast<long long>(ours.dx.numel() / shape.back()), static_cast<long long>(out), err);
      EXPECT_LE(err, dtype == at::kFloat ? 24.0 : 1.0);
    }
  }
}

TEST(Linear, WithoutBiasOrUnderTheSwitchIsAtLinear) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const auto o = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  const at::Tensor x = at::randn({5, 16}, o), w = at::randn({4, 16}, o), b = at::randn({4}, o);
  EXPECT_FALSE(ops::linear_is_fused(x, w, at::Tensor()));
  EXPECT_TRUE(at::equal(ops::linear(x, w, at::Tensor()), at::linear(x, w)));
  setenv("DS_REFERENCE_LINEAR", "1", 1);
  EXPECT_FALSE(ops::linear_is_fused(x, w, b));
  unsetenv("DS_REFERENCE_LINEAR");
}

}  // namespace
}  // namespace deepspeed
