// ops::linear against at::linear under autograd: y, dx and dW equal (the same GEMMs), the bias gradient within
// the fp32 summation bound bias_gelu's column sums use; bf16/fp16/fp32, a 3-d input, rows that are not a
// multiple of the kernel's row group, odd widths (element loads), no bias, the switches; the column-sum kernel,
// (DS_LINEAR_EPILOGUE=1) the cuBLASLt GEMM that sums the bias gradient in its epilogue, and (DS_GEMM_TUNED=1) all
// three GEMMs through cuBLASLt with timed algorithm choices, their bias gradient from the epilogue or (with
// DS_LINEAR_BIAS_KERNEL=1) from the column-sum kernel.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <tuple>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "deepspeed/ops/linear.h"
#include "src/ops/linear_gemms.h"
#include "tests/support/scoped_env.h"

namespace deepspeed {
namespace {

// These tests hold ops::linear's untuned path (LibTorch's GEMMs, the column-sum kernel) unless one says otherwise;
// the timed cuBLASLt GEMMs, the default, have their own tests, which put this back when they end.
const testing::ScopedEnv untuned_linear("DS_GEMM_TUNED", "0");

struct Grads {
  at::Tensor y, dx, dw, db;
};

Grads run(bool ours, at::ScalarType dtype, std::vector<std::int64_t> shape, std::int64_t out, bool bias = true) {
  at::manual_seed(9);
  const auto o = at::TensorOptions().device(at::kCUDA).dtype(dtype);
  at::Tensor x = at::randn(shape, o).requires_grad_(true);
  at::Tensor w = (at::randn({out, shape.back()}, o) * 0.05).detach().requires_grad_(true);
  at::Tensor b = bias ? at::randn({out}, o).requires_grad_(true) : at::Tensor();
  at::Tensor y = ours ? ops::linear(x, w, b) : at::linear(x, w, b);
  auto dy_shape = shape;
  dy_shape.back() = out;
  y.backward(at::randn(dy_shape, o));
  return {y.detach(), x.grad(), w.grad(), bias ? b.grad() : at::Tensor()};
}

void check_against_at_linear(const char* path) {
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
      std::printf("[linear] %s %s rows=%lld out=%lld: bias gradient %.2f eps from LibTorch's sum\n", path,
                  c10::toString(dtype), static_cast<long long>(ours.dx.numel() / shape.back()),
                  static_cast<long long>(out), err);
      EXPECT_LE(err, dtype == at::kFloat ? 24.0 : 1.0) << path;
    }
  }
}

TEST(Linear, KernelPathMatchesAtLinear) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  check_against_at_linear("kernel");
}

// DS_LINEAR_EPILOGUE=1: the weight and bias gradients from one cuBLASLt GEMM (BGRADB) where cuBLASLt offers an
// algorithm, the column-sum kernel where it does not; the same bounds either way.
TEST(Linear, EpiloguePathMatchesAtLinear) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  setenv("DS_LINEAR_EPILOGUE", "1", 1);
  check_against_at_linear("epilogue");
  unsetenv("DS_LINEAR_EPILOGUE");
}

// The epilogue call itself, at GPT-2's shapes: whether cuBLASLt offers it (printed: the benchmark's variant is
// only worth running where it does), and when it does, dW as at::mm's and db within the column sums' bound.
TEST(Linear, EpilogueGemmGivesTheWeightAndBiasGradients) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  setenv("DS_LINEAR_EPILOGUE", "1", 1);
  const bool built = ops::detail::linear_epilogue_requested();  // false only in a build without cuBLASLt
  unsetenv("DS_LINEAR_EPILOGUE");
  std::printf("[linear_epilogue] %s\n", built ? "built" : "not built (no cuBLASLt header)");
  const bool hopper = at::cuda::getCurrentDeviceProperties()->major == 9;
  for (const auto dtype : {at::kBFloat16, at::kHalf, at::kFloat}) {
    for (const auto& [rows, in, out] : std::vector<std::tuple<std::int64_t, std::int64_t, std::int64_t>>{
             {8192, 1600, 4800}, {8192, 1600, 1600}, {32768, 768, 2304}, {333, 64, 50}, {7, 8, 3}}) {
      at::manual_seed(4);
      const auto o = at::TensorOptions().device(at::kCUDA).dtype(dtype);
      const at::Tensor dy = at::randn({rows, out}, o), x = at::randn({rows, in}, o);
      at::Tensor dw = at::empty({out, in}, o), db = at::empty({out}, o);
      const bool taken = ops::detail::weight_and_bias_grad(dy, x, dw, db);
      std::printf("[linear_epilogue] %s rows=%lld in=%lld out=%lld: %s", c10::toString(dtype),
                  static_cast<long long>(rows), static_cast<long long>(in), static_cast<long long>(out),
                  taken ? "taken" : "not offered\n");
      // Where the build has it, Hopper's cuBLASLt must offer the 16-bit GPT-2 shapes the benchmark measures
      // (the same problem as other libraries' weight-gradient + BGRADB GEMM): else the experiment never runs.
      if (built && hopper && dtype != at::kFloat && rows == 8192) {
        EXPECT_TRUE(taken) << c10::toString(dtype) << " in " << in << " out " << out;
      }
      if (!taken) continue;
      const at::Tensor want_w = at::mm(dy.t(), x), want_b = dy.to(at::kDouble).sum(0);
      const double w_err = ((dw.to(at::kDouble) - want_w.to(at::kDouble)).abs().max() /
                            want_w.to(at::kDouble).abs().max().clamp_min(1.0)).item<double>();
      const double eps = dtype == at::kBFloat16 ? 7.8125e-3 : dtype == at::kHalf ? 9.765625e-4 : 1.1920929e-7;
      const double b_err =
          ((db.to(at::kDouble) - want_b).abs().max() / want_b.abs().max().clamp_min(1.0)).item<double>() / eps;
      std::printf(", dW max rel diff %.3g, bias gradient %.2f eps\n", w_err, b_err);
      EXPECT_LE(w_err, dtype == at::kFloat ? 1e-4 : 8 * eps) << c10::toString(dtype) << " rows " << rows;
      // fp32 sums over up to 32768 rows in cuBLASLt's order: a wider bound than the kernel's measured 11.3 eps.
      EXPECT_LE(b_err, dtype == at::kFloat ? 64.0 : 1.0) << c10::toString(dtype) << " rows " << rows;
    }
  }
}

// DS_GEMM_TUNED unset (the default), =1 and =any: the layer's three GEMMs through cuBLASLt with the fastest of the algorithms it
// offers (=1: of those with the heuristic's first's bits, lt_matmul_gpu_test), with and without a bias. cuBLASLt
// may sum in another order than cuBLAS, so y, dx and dW are held to at::linear's within a few units in the last
// place, the bias gradient to the fp32 sums' bound; a second run of the same shapes takes the cached choices and
// repeats the first bit for bit. On Hopper cuBLASLt must offer GPT-2's shapes.
class TunedGemms : public ::testing::TestWithParam<const char*> {};  // DS_GEMM_TUNED's value (null: unset)

TEST_P(TunedGemms, MatchAtLinear) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const testing::ScopedEnv on("DS_GEMM_TUNED", GetParam());  // back to 0 after it: the tests after it run untuned
  {  // fp32 layers stay on LibTorch's GEMMs (its TF32 setting applies to them): at::linear's y bit for bit
    const Grads ours = run(true, at::kFloat, {2, 333, 1600}, 1600), ref = run(false, at::kFloat, {2, 333, 1600}, 1600);
    EXPECT_TRUE(at::equal(ours.y, ref.y)) << "fp32";
    EXPECT_FALSE(ops::linear_is_tuned(at::empty({4, 8}, at::TensorOptions().device(at::kCUDA)),
                                      at::empty({3, 8}, at::TensorOptions().device(at::kCUDA)), at::Tensor()));
  }
  const bool built = ops::detail::gemm_tuning_requested();
  std::printf("[linear_tuned] %s\n", built ? "built" : "not built (no cuBLASLt header)");
  if (built && at::cuda::getCurrentDeviceProperties()->major == 9) {
    const auto o = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
    const at::Tensor x = at::randn({4096, 768}, o), w = at::randn({2304, 768}, o), b = at::randn({2304}, o);
    at::Tensor y = at::empty({4096, 2304}, o);
    EXPECT_TRUE(ops::detail::linear_forward(x, w, b, y, ops::detail::LtChoice::kTimed));
  }
  for (const auto dtype : {at::kBFloat16, at::kHalf}) {
    for (const bool bias : {true, false}) {
      for (const auto& [shape, out] : std::vector<std::pair<std::vector<std::int64_t>, std::int64_t>>{
               {{4, 1024, 768}, 2304}, {{2, 333, 1600}, 1600}, {{7, 64}, 50}, {{1, 1, 8}, 3}}) {
        const auto o = at::TensorOptions().device(at::kCUDA).dtype(dtype);
        const at::Tensor b = bias ? at::empty({out}, o) : at::Tensor();
        EXPECT_EQ(ops::linear_is_tuned(at::empty(shape, o), at::empty({out, shape.back()}, o), b), built);
        const Grads first = run(true, dtype, shape, out, bias), again = run(true, dtype, shape, out, bias);
        const Grads ref = run(false, dtype, shape, out, bias);
        const std::string label = std::string(c10::toString(dtype)) + (bias ? " bias" : "") + " out " +
                                  std::to_string(out);
        const double tol = dtype == at::kBFloat16 ? 2e-2 : 1e-2;
        EXPECT_TRUE(at::allclose(first.y, ref.y, tol, tol)) << label;
        EXPECT_TRUE(at::allclose(first.dx, ref.dx, tol, tol)) << label;
        EXPECT_TRUE(at::allclose(first.dw, ref.dw, tol, tol)) << label;
        EXPECT_TRUE(at::equal(first.y, again.y) && at::equal(first.dx, again.dx) && at::equal(first.dw, again.dw))
            << label << ": the cached choice gives the same bits";
        if (bias) {
          const double eps = dtype == at::kBFloat16 ? 7.8125e-3 : 9.765625e-4;
          const at::Tensor exact = ref.db.to(at::kDouble);
          const double scale = std::max(exact.abs().max().item<double>(), 1.0);
          EXPECT_LE((first.db.to(at::kDouble) - exact).abs().max().item<double>() / scale / eps, 1.0) << label;
          EXPECT_TRUE(at::equal(first.db, again.db)) << label;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Linear, TunedGemms, ::testing::Values(nullptr, "1", "any"));

// DS_LINEAR_BIAS_KERNEL=1 with DS_GEMM_TUNED=1: the weight GEMM tuned without the BGRADB epilogue, the bias
// gradient from the column-sum kernel — so bit for bit the untuned layer's bias gradient (the same dy, the same
// kernel), and y, dx, dW within the tuned test's tolerances of at::linear's.
TEST(Linear, TunedGemmsWithTheBiasKernel) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  for (const auto dtype : {at::kBFloat16, at::kHalf}) {
    for (const auto& [shape, out] : std::vector<std::pair<std::vector<std::int64_t>, std::int64_t>>{
             {{4, 1024, 768}, 2304}, {{2, 333, 1600}, 1600}, {{7, 64}, 50}}) {
      const Grads column_sums = run(true, dtype, shape, out), ref = run(false, dtype, shape, out);
      setenv("DS_GEMM_TUNED", "1", 1);
      setenv("DS_LINEAR_BIAS_KERNEL", "1", 1);
      const Grads ours = run(true, dtype, shape, out);
      unsetenv("DS_LINEAR_BIAS_KERNEL");
      setenv("DS_GEMM_TUNED", "0", 1);
      const std::string label = std::string(c10::toString(dtype)) + " out " + std::to_string(out);
      const double tol = dtype == at::kBFloat16 ? 2e-2 : 1e-2;
      EXPECT_TRUE(at::allclose(ours.y, ref.y, tol, tol)) << label;
      EXPECT_TRUE(at::allclose(ours.dx, ref.dx, tol, tol)) << label;
      EXPECT_TRUE(at::allclose(ours.dw, ref.dw, tol, tol)) << label;
      EXPECT_TRUE(at::equal(ours.db, column_sums.db)) << label;
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
