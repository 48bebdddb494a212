// deepspeed::ops::bias_gelu: the CUDA kernels against (a) the reference run in the same dtype on the GPU (ATen's
// unfused ops: the numbers a model gets without the fusion) and (b) the reference in fp32 from the same values,
// for bf16/fp16/fp32 inputs, a bias in the inputs' dtype or fp32, GPT-2's MLP widths, an odd width and a
// misaligned input (element loads), 1 to 4096 rows. Every case prints its measured error.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include "deepspeed/ops/bias_gelu.h"
#include "deepspeed/ops/linear.h"
#include "src/ops/bias_gelu_kernel.h"
#include "tests/support/kernel_checks.h"
#include "tests/support/scoped_env.h"

namespace {

// linear's bias gradient here is the column-sum kernel's: its untuned path (the timed GEMMs, the default, sum it in
// cuBLASLt's epilogue instead).
const deepspeed::testing::ScopedEnv untuned_linear("DS_GEMM_TUNED", "0");

namespace ops = deepspeed::ops;
using deepspeed::testing::epsilon_of;

double error_in_eps(const at::Tensor& got, const at::Tensor& want, double eps, const char* what,
                    const std::string& label) {
  return deepspeed::testing::error_in_eps(got, want, eps, "bias_gelu", what, label);
}

struct Outcome {
  at::Tensor y, dx, dbias;  // fp32 copies
};

template <typename Fn>
Outcome run(Fn fn, const at::Tensor& x, const at::Tensor& bias, const at::Tensor& dy) {
  auto xx = x.detach().requires_grad_(true), b = bias.detach().requires_grad_(true);  // detach: keep misalignment
  const at::Tensor y = fn(xx, b);
  y.backward(dy);
  const auto f = [](const at::Tensor& t) { return t.detach().to(at::kFloat); };
  return {f(y), f(xx.grad()), f(b.grad())};
}

// Bounds in the inputs' epsilon, from the H200 run of 2026-12-03 (all inputs then on tanhf's form) and the H100
// run of 2026-12-05 (16-bit inputs on the σ form). Against the same-dtype reference: fp32 y and dx bit-identical
// (the same formula in fp32, rounded once); 16-bit y and dx, where the σ form's rounding lands on the adjacent
// value, at most 0.10 eps (y) and 0.85 (dx); the bias gradients, which sum those dx, 0.69 eps (bf16), 0.58
// (fp16; 0.14 and 0.38 on tanhf's form: order only), 11.3 (fp32, 4096 rows summed by one thread per column over
// 50 columns). Against the fp32 reference the 16-bit h = round(x + bias) moves GELU: at most 0.98 eps (bf16),
// 0.92 (fp16). About 2× headroom on the measured sums.
// Elementwise against the same-dtype reference: fp32 inputs take the reference's tanhf form (anything above half
// an ulp is a different formula); 16-bit inputs the σ form (bias_gelu_kernel.cu), whose fp32 value is a few fp32
// units from tanhf's, so a rounded result is the reference's or its neighbour: below one eps by the metric's
// construction (an exhaustive CPU check over every 16-bit h: at most 0.46 eps), where a wrong formula is tens to
// thousands.
double elementwise_bound(at::ScalarType t) { return t == at::kFloat ? 0.5 : 1.0; }
double sum_bound(at::ScalarType t) { return t == at::kFloat ? 24.0 : 1.5; }
double fp32_reference_bound(at::ScalarType t) { return t == at::kFloat ? 24.0 : 2.0; }

using Case = std::tuple<at::ScalarType, bool, std::int64_t, std::int64_t>;  // dtype, fp32 bias, N, rows

class BiasGeluGpu : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  }
};

void check_case(at::ScalarType dtype, bool fp32_bias, std::int64_t n, std::int64_t rows, bool misaligned) {
  at::manual_seed(static_cast<std::uint64_t>(n * 7919 + rows));
  const auto opts = at::TensorOptions().device(at::kCUDA);
  const auto make = [&](double scale) {
    const auto v = (at::randn({rows, n}, opts) * scale).to(dtype);
    return misaligned ? deepspeed::testing::unaligned_copy(v) : v;
  };
  const auto x = make(1.5), dy = make(1.0);
  const auto bias = (0.5 * at::randn({n}, opts)).to(fp32_bias ? at::kFloat : dtype);
  ASSERT_TRUE(ops::bias_gelu_is_fused(x, bias));
  const Outcome got = run(ops::bias_gelu, x, bias, dy);
  const Outcome same = run(ops::bias_gelu_reference, x, bias, dy);
  const auto up = [](const at::Tensor& t) { return t.to(at::kFloat); };
  const Outcome exact = run(ops::bias_gelu_reference, up(x), up(bias), up(dy));
  const std::string label = std::string(c10::toString(dtype)) + (fp32_bias ? "/fp32 bias" : "") + " N=" +
                            std::to_string(n) + " rows=" + std::to_string(rows) + (misaligned ? " misaligned" : "");
  const double eps = epsilon_of(dtype);
  EXPECT_LE(error_in_eps(got.y, same.y, eps, "y/same", label), elementwise_bound(dtype)) << label;
  EXPECT_LE(error_in_eps(got.dx, same.dx, eps, "dx/same", label), elementwise_bound(dtype)) << label;
  EXPECT_LE(error_in_eps(got.dbias, same.dbias, eps, "dbias/same", label), sum_bound(dtype)) << label;
  const double bound = fp32_reference_bound(dtype);
  EXPECT_LE(error_in_eps(got.y, exact.y, eps, "y/fp32", label), bound) << label;
  EXPECT_LE(error_in_eps(got.dx, exact.dx, eps, "dx/fp32", label), bound) << label;
  EXPECT_LE(error_in_eps(got.dbias, exact.dbias, eps, "dbias/fp32", label), bound) << label;
}

TEST_P(BiasGeluGpu, MatchesTheReference) {
  const auto [dtype, fp32_bias, n, rows] = GetParam();
  if (dtype == at::kFloat && fp32_bias) GTEST_SKIP() << "fp32 bias with fp32 inputs: the plain fp32 case";
  check_case(dtype, fp32_bias, n, rows, /*misaligned=*/false);
}

INSTANTIATE_TEST_SUITE_P(
    DtypesWidthsRows, BiasGeluGpu,
    ::testing::Combine(::testing::Values(at::kBFloat16, at::kHalf, at::kFloat), ::testing::Bool(),
                       // GPT-2's MLP widths (4·768, 4·1024, 4·1600: 16-byte loads) and an odd one (element loads)
                       ::testing::Values(std::int64_t{3072}, std::int64_t{4096}, std::int64_t{6400}, std::int64_t{50}),
                       ::testing::Values(std::int64_t{1}, std::int64_t{7}, std::int64_t{4096})));

TEST_F(BiasGeluGpu, MisalignedInputTakesElementLoads) {
  for (const auto dtype : {at::kBFloat16, at::kHalf, at::kFloat}) check_case(dtype, false, 3072, 300, true);
}

// The fold of the partial rows (every bias gradient of ops/: bias_gelu's, linear's column sums, linear_chunks')
// adds the parts of a column one at a time in part order: bit for bit a host loop in fp32, for part counts below,
// at and either side of its load group (16), the ~40-60 of GPT-2's widths, and more; columns odd and not.
TEST_F(BiasGeluGpu, FoldAddsThePartsInPartOrder) {
  namespace detail = deepspeed::ops::detail;
  for (const std::int64_t parts : {1, 2, 15, 16, 17, 42, 55, 100}) {
    for (const std::int64_t columns : {1, 33, 1600}) {
      at::manual_seed(static_cast<std::uint64_t>(parts * 131 + columns));
      // Values of mixed scale, so that a change of order would change the rounded sums.
      const at::Tensor parts_cpu = at::randn({parts, columns}) * at::exp(at::randn({parts, columns}) * 4);
      const at::Tensor workspace = parts_cpu.to(at::kCUDA);
      at::Tensor dbias = at::empty({columns}, workspace.options());
      ASSERT_EQ(detail::launch_bias_fold(detail::ElementType::kFloat32, workspace.data_ptr<float>(), parts, columns,
                                         dbias.data_ptr(), c10::cuda::getCurrentCUDAStream().stream()),
                cudaSuccess);
      const at::Tensor got = dbias.cpu();
      const float* w = parts_cpu.data_ptr<float>();
      for (std::int64_t c = 0; c < columns; ++c) {
        float want = 0.0f;
        for (std::int64_t p = 0; p < parts; ++p) want += w[p * columns + c];
        ASSERT_EQ(std::memcmp(&want, got.data_ptr<float>() + c, sizeof want), 0)
            << "parts=" << parts << " columns=" << columns << " column " << c << ": " << got[c].item<float>()
            << " against " << want;
      }
    }
  }
}

TEST_F(BiasGeluGpu, ZeroRowsGiveAZeroBiasGradient) {
  const auto opts = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  auto x = at::empty({0, 3072}, opts).requires_grad_(true);
  auto b = at::ones({3072}, opts).requires_grad_(true);
  ops::bias_gelu(x, b).sum().backward();
  EXPECT_EQ(b.grad().abs().sum().item<double>(), 0.0);
}

// The unrolled kernels (the default: several rows' loads in flight per thread) give the single-load kernels'
// (DS_BIAS_GELU_UNROLL=1) y, dx and bias gradient bit for bit, and linear's bias gradient too, for every dtype
// (and a 16-bit x with an fp32 bias), including rows that leave a remainder after the unrolled groups. On an
// H200 (132 SMs) only the larger row counts reach the unrolled loop bodies (1 and 37 rows are all remainder
// there); 16411 runs several groups a thread, then a remainder.
TEST_F(BiasGeluGpu, UnrolledKernelsEqualTheSingleLoadKernelsBitwise) {
  for (const auto dtype : {at::kBFloat16, at::kHalf, at::kFloat}) {
    for (const bool fp32_bias : {false, true}) {
      if (fp32_bias && dtype == at::kFloat) continue;
      for (const std::int64_t rows : {std::int64_t{1}, std::int64_t{37}, std::int64_t{4096}, std::int64_t{16411}}) {
        at::manual_seed(17);
        const auto opts = at::TensorOptions().device(at::kCUDA);
        const auto x = (at::randn({rows, 3072}, opts) * 1.5).to(dtype), dy = at::randn({rows, 3072}, opts).to(dtype);
        const auto bias = (0.5 * at::randn({3072}, opts)).to(fp32_bias ? at::kFloat : dtype);
        const auto w = (0.02 * at::randn({3072, 768}, opts)).to(dtype), lb = at::randn({3072}, opts).to(dtype);
        const auto h = at::randn({rows, 768}, opts).to(dtype);
        const auto both = [&] {
          const Outcome gelu = run(ops::bias_gelu, x, bias, dy);
          auto hh = h.detach().requires_grad_(true), ww = w.detach().requires_grad_(true);
          auto bb = lb.detach().requires_grad_(true);
          ops::linear(hh, ww, bb).backward(dy);
          return std::make_pair(gelu, bb.grad().clone());
        };
        const auto [plain, plain_bias] = [&] {
          const deepspeed::testing::ScopedEnv single_load("DS_BIAS_GELU_UNROLL", "1");
          return both();
        }();
        const auto [unrolled, unrolled_bias] = [&] {
          const deepspeed::testing::ScopedEnv by_default("DS_BIAS_GELU_UNROLL", nullptr);
          return both();
        }();
        const std::string label =
            std::string(c10::toString(dtype)) + (fp32_bias ? " fp32 bias" : "") + " rows=" + std::to_string(rows);
        EXPECT_TRUE(at::equal(plain.y, unrolled.y)) << label;
        EXPECT_TRUE(at::equal(plain.dx, unrolled.dx)) << label;
        EXPECT_TRUE(at::equal(plain.dbias, unrolled.dbias)) << label;
        EXPECT_TRUE(at::equal(plain_bias, unrolled_bias)) << label << " (linear)";
      }
    }
  }
}

// DS_BIAS_GELU_TANHF=1 puts 16-bit inputs back on tanhf's form, ATen's formula: y and dx bit for bit the
// same-dtype reference's, as every dtype's were before the σ form.
TEST_F(BiasGeluGpu, TanhfFormEqualsTheReferenceBitwise) {
  setenv("DS_BIAS_GELU_TANHF", "1", 1);
  for (const auto dtype : {at::kBFloat16, at::kHalf}) {
    at::manual_seed(29);
    const auto opts = at::TensorOptions().device(at::kCUDA);
    const auto x = (at::randn({1024, 6400}, opts) * 1.5).to(dtype), dy = at::randn({1024, 6400}, opts).to(dtype);
    const auto bias = (0.5 * at::randn({6400}, opts)).to(dtype);
    const Outcome got = run(ops::bias_gelu, x, bias, dy);
    const Outcome same = run(ops::bias_gelu_reference, x, bias, dy);
    EXPECT_TRUE(at::equal(got.y, same.y)) << c10::toString(dtype);
    EXPECT_TRUE(at::equal(got.dx, same.dx)) << c10::toString(dtype);
  }
  unsetenv("DS_BIAS_GELU_TANHF");
}

// bf16 inputs so large that h² or h³ overflow fp32 (kernel_math_test holds the formula on the CPU; this, the
// kernel with ex2.approx): the σ form's derivative is 1 above 20 and 0 below −20, never NaN (it was, for
// |h| > 1.2e13, before the slope's h was bounded), and y = h above and −0 below. One row of 64: eight packs.
TEST_F(BiasGeluGpu, HugeBf16InputsGiveTheDerivativesLimits) {
  const auto opts = at::TensorOptions().device(at::kCUDA);
  std::vector<float> values;
  for (float h : {21.0f, 1e6f, 1e13f, 1e14f, 1e19f, 1e20f, 4e36f, 3e38f}) {
    values.push_back(h);
    values.push_back(-h);
  }
  values.resize(64, 1.0f);
  const auto x = at::tensor(values, opts.dtype(at::kFloat)).view({1, 64}).to(at::kBFloat16);
  const auto bias = at::zeros({64}, opts.dtype(at::kBFloat16));
  const auto dy = at::ones({1, 64}, opts.dtype(at::kBFloat16));
  const Outcome got = run(ops::bias_gelu, x, bias, dy);
  const auto h = x.to(at::kFloat);
  for (std::int64_t i = 0; i < 16; ++i) {
    const float v = h[0][i].item<float>();
    EXPECT_EQ(got.dx[0][i].item<float>(), v > 0 ? 1.0f : 0.0f) << "h = " << v;
    EXPECT_EQ(got.y[0][i].item<float>(), v > 0 ? v : 0.0f) << "h = " << v;
  }
}

TEST_F(BiasGeluGpu, ReferenceForcedByEnvironment) {
  const auto opts = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  const auto x = at::randn({4, 64}, opts), b = at::zeros({64}, opts);
  setenv("DS_REFERENCE_BIAS_GELU", "1", 1);
  EXPECT_FALSE(ops::bias_gelu_is_fused(x, b));
  unsetenv("DS_REFERENCE_BIAS_GELU");
  EXPECT_TRUE(ops::bias_gelu_is_fused(x, b));
}

}  // namespace
