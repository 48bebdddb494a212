// deepspeed::ops::add_layer_norm: the CUDA kernels against the reference computed in fp32 from the same values
// (forward h and y, backward d residual, d branch, d weight, d bias, and d branch_bias with a branch bias), for
// bf16/fp16/fp32 inputs, parameters in the inputs' dtype or fp32, the GPT-2 widths, a long row, an odd one
// (element loads) and 1 to 4096 rows, with and without a branch bias.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <tuple>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include "deepspeed/ops/add_layer_norm.h"
#include "src/ops/add_layer_norm_kernel.h"
#include "src/ops/launch_support.h"
#include "tests/support/kernel_checks.h"
#include "tests/support/scoped_env.h"

namespace {

namespace ops = deepspeed::ops;
using deepspeed::testing::epsilon_of;

double error_in_eps(const at::Tensor& got, const at::Tensor& want, double eps, const char* what,
                    const std::string& label) {
  return deepspeed::testing::error_in_eps(got, want, eps, "add_layer_norm", what, label);
}
constexpr double kEps = 1e-5;

struct Grads {
  at::Tensor h, y, d_residual, d_branch, d_weight, d_bias, d_branch_bias;  // fp32 copies; the last may be undefined
};

template <typename Fn>
Grads run(Fn fn, const at::Tensor& residual, const at::Tensor& branch, const at::Tensor& weight,
          const at::Tensor& bias, const at::Tensor& dh_out, const at::Tensor& dy, const at::Tensor& branch_bias) {
  // detach, not clone: a misaligned input must reach the op as it is.
  auto r = residual.detach().requires_grad_(true), x = branch.detach().requires_grad_(true);
  auto w = weight.detach().requires_grad_(true), b = bias.detach().requires_grad_(true);
  auto rb = branch_bias.defined() ? branch_bias.detach().requires_grad_(true) : at::Tensor();
  auto [h, y] = fn(r, x, w, b, kEps, rb);
  std::vector<at::Tensor> outputs{y}, grads{dy};
  if (dh_out.defined()) {  // h used elsewhere too, as in a transformer block
    outputs.push_back(h);
    grads.push_back(dh_out);
  }
  torch::autograd::backward(outputs, grads);
  const auto f = [](const at::Tensor& t) { return t.detach().to(at::kFloat); };
  return {f(h), f(y), f(r.grad()), f(x.grad()), f(w.grad()), f(b.grad()), rb.defined() ? f(rb.grad()) : at::Tensor()};
}

// Bounds in multiples of the dtype's epsilon, from the H200 run of 2026-12-03 (every case of this file) with
// about 2× headroom: the largest errors measured were 1.02 eps (bf16), 0.87 eps (fp16, also with fp32
// parameters) and 8.65 eps (fp32, summation order over up to 8192 columns or 4096 rows).
double tolerance_in_eps(at::ScalarType t) { return t == at::kFloat ? 18.0 : 2.5; }

// The branch bias's gradient against the fp32 sum (at::sum) of the d(branch) the kernel returned, in the
// parameters' epsilon: the two differ by summation order and by the kernel's one rounding to the parameters'
// dtype. Not measured on a device yet: set like bias_gelu's measured sum bounds (0.14 eps bf16, 0.38 fp16, 11.3
// fp32 over 4096 rows) plus the half ulp of the final rounding for 16-bit parameters.
double branch_bias_sum_bound(at::ScalarType param_dtype) { return param_dtype == at::kFloat ? 24.0 : 1.0; }

using Case = std::tuple<at::ScalarType, bool, std::int64_t, std::int64_t>;  // dtype, fp32 params, C, rows

class AddLayerNormGpu : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  }
};

void check_case(at::ScalarType dtype, bool fp32_params, std::int64_t c, std::int64_t rows, bool with_dh_out,
                bool misaligned, bool with_branch_bias = false) {
  at::manual_seed(static_cast<std::uint64_t>(c * 7919 + rows));
  const auto opts = at::TensorOptions().device(at::kCUDA);
  const auto pdtype = fp32_params ? at::kFloat : dtype;
  const auto make = [&](double scale) {
    const auto v = (at::randn({rows, c}, opts) * scale).to(dtype);
    return misaligned ? deepspeed::testing::unaligned_copy(v) : v;
  };
  const auto residual = make(1.0), branch = make(1.0), dy = make(1.0), dh_out = with_dh_out ? make(1.0) : at::Tensor();
  const auto weight = (1 + 0.2 * at::randn({c}, opts)).to(pdtype), bias = (0.2 * at::randn({c}, opts)).to(pdtype);
  // As large as the branch, so that a kernel that dropped it would be far off.
  const auto branch_bias = with_branch_bias ? at::randn({c}, opts).to(pdtype) : at::Tensor();
  ASSERT_TRUE(ops::add_layer_norm_is_fused(residual, branch, weight, bias, branch_bias));
  const Grads got = run(ops::add_layer_norm, residual, branch, weight, bias, dh_out, dy, branch_bias);
  // The reference in fp32 from the same (exactly representable) values.
  const auto up = [](const at::Tensor& t) { return t.defined() ? t.to(at::kFloat) : t; };
  const Grads want = run(ops::add_layer_norm_reference, up(residual), up(branch), up(weight), up(bias), up(dh_out),
                         up(dy), up(branch_bias));
  const std::string label = std::string(c10::toString(dtype)) + (fp32_params ? "/fp32 params" : "") + " C=" +
                            std::to_string(c) + " rows=" + std::to_string(rows) + (with_dh_out ? "" : " no dh_out") +
                            (misaligned ? " misaligned" : "") + (with_branch_bias ? " branch bias" : "");
  // One unit for all outputs: the inputs' epsilon. fp32 parameter gradients too, since their terms use x̂ of
  // the h rounded to the inputs' dtype (the reference's h is the exact sum).
  const double eps = epsilon_of(dtype), tol = tolerance_in_eps(dtype);
  EXPECT_LE(error_in_eps(got.h, want.h, eps, "h", label), tol) << label;
  EXPECT_LE(error_in_eps(got.y, want.y, eps, "y", label), tol) << label;
  EXPECT_LE(error_in_eps(got.d_residual, want.d_residual, eps, "d_resid", label), tol) << label;
  EXPECT_TRUE(at::equal(got.d_residual, got.d_branch)) << label;
  EXPECT_LE(error_in_eps(got.d_weight, want.d_weight, eps, "d_weight", label), tol) << label;
  EXPECT_LE(error_in_eps(got.d_bias, want.d_bias, eps, "d_bias", label), tol) << label;
  if (!with_branch_bias) return;
  ASSERT_TRUE(got.d_branch_bias.defined()) << label;
  EXPECT_LE(error_in_eps(got.d_branch_bias, want.d_branch_bias, eps, "d_bbias", label), tol) << label;
  // Its definition: the column sum of the d(branch) returned (rounded to the inputs' dtype), summed in fp32.
  EXPECT_LE(error_in_eps(got.d_branch_bias, got.d_branch.sum(0), epsilon_of(pdtype), "d_bbias/sum", label),
            branch_bias_sum_bound(pdtype))
      << label;
  // The forward's two roundings, b = round(branch + branch_bias) and h = round(residual + b), are the reference's
  // in the same dtype: h is bit-identical to it.
  const Grads same = run(ops::add_layer_norm_reference, residual, branch, weight, bias, dh_out, dy, branch_bias);
  EXPECT_TRUE(at::equal(got.h, same.h)) << label;
}

TEST_P(AddLayerNormGpu, MatchesTheFp32Reference) {
  const auto [dtype, fp32_params, c, rows] = GetParam();
  if (dtype == at::kFloat && fp32_params) GTEST_SKIP() << "fp32 parameters with fp32 inputs: the plain fp32 case";
  check_case(dtype, fp32_params, c, rows, /*with_dh_out=*/true, /*misaligned=*/false);
}

TEST_P(AddLayerNormGpu, BranchBiasMatchesTheFp32Reference) {
  const auto [dtype, fp32_params, c, rows] = GetParam();
  if (dtype == at::kFloat && fp32_params) GTEST_SKIP() << "fp32 parameters with fp32 inputs: the plain fp32 case";
  check_case(dtype, fp32_params, c, rows, /*with_dh_out=*/true, /*misaligned=*/false, /*with_branch_bias=*/true);
}

// dh of the default backward and of the one the environment switch `name`=`value` selects, from the same
// inputs: within one unit of the inputs' dtype.
void expect_dh_near_the_default(at::ScalarType dtype, bool fp32_params, std::int64_t c, std::int64_t rows,
                                const char* name, const char* value, std::uint64_t seed) {
  at::manual_seed(seed);
  const auto opts = at::TensorOptions().device(at::kCUDA);
  const auto pdtype = fp32_params ? at::kFloat : dtype;
  const auto residual = at::randn({rows, c}, opts).to(dtype), branch = at::randn({rows, c}, opts).to(dtype);
  const auto weight = (1.0 + 0.1 * at::randn({c}, opts)).to(pdtype), bias = (0.1 * at::randn({c}, opts)).to(pdtype);
  const auto dy = at::randn({rows, c}, opts).to(dtype), dh_out = at::randn({rows, c}, opts).to(dtype);
  const auto once = [&] { return run(ops::add_layer_norm, residual, branch, weight, bias, dh_out, dy, at::Tensor()); };
  const Grads by_default = once();
  const Grads switched = [&] {
    const deepspeed::testing::ScopedEnv on(name, value);
    return once();
  }();
  const std::string label = std::string(c10::toString(dtype)) + (fp32_params ? "/fp32 params" : "") + " C=" +
                            std::to_string(c) + " rows=" + std::to_string(rows) + " " + name + "=" + value;
  EXPECT_LE(error_in_eps(switched.d_residual, by_default.d_residual, epsilon_of(dtype), "dh/default", label), 1.0)
      << label;
}

// DS_ADD_LAYER_NORM_SPLIT=1, the backward in two passes (add_layer_norm_split_kernel.cu): every case above, with
// and without a branch bias, against the fp32 reference with the same bounds; and dh against the fused
// kernel's. The same arithmetic in the same order: equal, or one rounding apart should the compiler contract a
// multiply-add differently in the two kernels (one unit is below 1 eps of the metric; a wrong term is far more).
TEST_P(AddLayerNormGpu, SplitBackwardMatchesTheFp32Reference) {
  const auto [dtype, fp32_params, c, rows] = GetParam();
  if (dtype == at::kFloat && fp32_params) GTEST_SKIP() << "fp32 parameters with fp32 inputs: the plain fp32 case";
  {
    const deepspeed::testing::ScopedEnv split("DS_ADD_LAYER_NORM_SPLIT", "1");
    check_case(dtype, fp32_params, c, rows, /*with_dh_out=*/true, /*misaligned=*/false);
    check_case(dtype, fp32_params, c, rows, /*with_dh_out=*/true, /*misaligned=*/false, /*with_branch_bias=*/true);
  }
  expect_dh_near_the_default(dtype, fp32_params, c, rows, "DS_ADD_LAYER_NORM_SPLIT", "1", 31);
}

// DS_ADD_LAYER_NORM_WIDE=1 and =2, the backward with one 16-byte pack a thread (add_layer_norm_wide_kernel.cu;
// 16-bit values, C a multiple of 8 up to 2048, else the default kernel runs): every case above against the fp32
// reference with the same bounds, and dh against the default kernel's within one unit (the same arithmetic, its
// row sums grouped over threads otherwise).
TEST_P(AddLayerNormGpu, WideBackwardMatchesTheFp32Reference) {
  const auto [dtype, fp32_params, c, rows] = GetParam();
  if (dtype == at::kFloat && fp32_params) GTEST_SKIP() << "fp32 parameters with fp32 inputs: the plain fp32 case";
  if (dtype != at::kFloat && c % 8 == 0 && c <= 2048) {  // the wide kernel, not the default, runs
    EXPECT_TRUE(ops::detail::add_layer_norm_wide_fits(ops::detail::element_type(dtype), c, {}));
  }
  for (const char* ahead : {"1", "2"}) {
    {
      const deepspeed::testing::ScopedEnv wide("DS_ADD_LAYER_NORM_WIDE", ahead);
      check_case(dtype, fp32_params, c, rows, /*with_dh_out=*/true, /*misaligned=*/false);
      check_case(dtype, fp32_params, c, rows, /*with_dh_out=*/false, /*misaligned=*/false);
      check_case(dtype, fp32_params, c, rows, /*with_dh_out=*/true, /*misaligned=*/false, /*with_branch_bias=*/true);
    }
    expect_dh_near_the_default(dtype, fp32_params, c, rows, "DS_ADD_LAYER_NORM_WIDE", ahead, 37);
  }
}

INSTANTIATE_TEST_SUITE_P(
    DtypesWidthsRows, AddLayerNormGpu,
    ::testing::Combine(::testing::Values(at::kBFloat16, at::kHalf, at::kFloat), ::testing::Bool(),
                       // GPT-2's widths (16-byte loads), a long row, an odd one (element loads)
                       ::testing::Values(std::int64_t{768}, std::int64_t{1024}, std::int64_t{1600}, std::int64_t{4096},
                                         std::int64_t{50}),
                       ::testing::Values(std::int64_t{1}, std::int64_t{7}, std::int64_t{4096})));

TEST_F(AddLayerNormGpu, NoGradientFromHsOtherUses) {
  for (const bool branch_bias : {false, true}) {
    for (const auto dtype : {at::kBFloat16, at::kFloat}) check_case(dtype, false, 768, 300, false, false, branch_bias);
  }
}

TEST_F(AddLayerNormGpu, MisalignedRowsTakeElementLoads) {
  for (const bool branch_bias : {false, true}) {
    for (const auto dtype : {at::kBFloat16, at::kHalf, at::kFloat}) {
      check_case(dtype, false, 768, 300, true, true, branch_bias);
    }
  }
}

TEST_F(AddLayerNormGpu, LongestRows) {
  for (const bool branch_bias : {false, true}) {
    check_case(at::kBFloat16, false, 8192, 64, true, false, branch_bias);
    check_case(at::kFloat, false, 8191, 64, true, false, branch_bias);  // odd: 512 threads × 16 element loads
  }
}

TEST_F(AddLayerNormGpu, ZeroRows) {
  const auto opts = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  for (const bool with_branch_bias : {false, true}) {
    auto x = at::empty({0, 768}, opts).requires_grad_(true);
    auto w = at::ones({768}, opts).requires_grad_(true), b = at::zeros({768}, opts).requires_grad_(true);
    auto rb = with_branch_bias ? at::ones({768}, opts).requires_grad_(true) : at::Tensor();
    auto [h, y] = ops::add_layer_norm(x, x, w, b, kEps, rb);
    y.sum().backward();
    EXPECT_EQ(h.numel(), 0);
    EXPECT_EQ(w.grad().abs().sum().item<double>(), 0.0);
    EXPECT_EQ(b.grad().abs().sum().item<double>(), 0.0);
    if (with_branch_bias) EXPECT_EQ(rb.grad().abs().sum().item<double>(), 0.0);
  }
}

// The pipelined backward (the default: dh_out prefetched with the next row, both row sums in one reduction)
// gives the unpipelined one's (DS_ADD_LAYER_NORM_PIPELINED=0) gradients bit for bit: every dtype and parameter
// dtype, with and without dh_out, rows that leave the grid's last stride short, C from one warp per row (256:
// several rows per block) through GPT-2's widths (768: two warps a row, two rows a block; 1600: four warps with
// one partly idle) to the widest (8192). Only the 16-byte-load kernels with parameters of the inputs' dtype have
// the pipelined instance; odd rows (element loads) and fp32 parameters with 16-bit inputs always take the
// unpipelined kernel (whose dh the pipelined one missed by a rounding there).
TEST_F(AddLayerNormGpu, PipelinedBackwardEqualsTheUnpipelinedBitwise) {
  for (const auto dtype : {at::kBFloat16, at::kHalf, at::kFloat}) {
    for (const bool fp32_params : {false, true}) {
      if (dtype == at::kFloat && fp32_params) continue;
      for (const std::int64_t c : {std::int64_t{256}, std::int64_t{768}, std::int64_t{1600}, std::int64_t{8192}}) {
        for (const std::int64_t rows : {std::int64_t{7}, std::int64_t{3001}}) {
          for (const bool with_dh_out : {true, false}) {
            at::manual_seed(23);
            const auto opts = at::TensorOptions().device(at::kCUDA);
            const auto pdtype = fp32_params ? at::kFloat : dtype;
            const auto residual = at::randn({rows, c}, opts).to(dtype), branch = at::randn({rows, c}, opts).to(dtype);
            const auto weight = (1.0 + 0.1 * at::randn({c}, opts)).to(pdtype), bias = (0.1 * at::randn({c}, opts)).to(pdtype);
            const auto dy = at::randn({rows, c}, opts).to(dtype);
            const auto dh_out = with_dh_out ? at::randn({rows, c}, opts).to(dtype) : at::Tensor();
            const auto both = [&] {
              return run(ops::add_layer_norm, residual, branch, weight, bias, dh_out, dy, at::Tensor());
            };
            const Grads plain = [&] {
              const deepspeed::testing::ScopedEnv unpipelined("DS_ADD_LAYER_NORM_PIPELINED", "0");
              return both();
            }();
            const Grads pipelined = [&] {
              const deepspeed::testing::ScopedEnv by_default("DS_ADD_LAYER_NORM_PIPELINED", nullptr);
              return both();
            }();
            const std::string label = std::string(c10::toString(dtype)) + (fp32_params ? " fp32 params" : "") +
                                      " C=" + std::to_string(c) + " rows=" + std::to_string(rows) +
                                      (with_dh_out ? "" : " no dh_out");
            EXPECT_TRUE(at::equal(plain.d_residual, pipelined.d_residual)) << label;
            EXPECT_TRUE(at::equal(plain.d_branch, pipelined.d_branch)) << label;
            EXPECT_TRUE(at::equal(plain.d_weight, pipelined.d_weight)) << label;
            EXPECT_TRUE(at::equal(plain.d_bias, pipelined.d_bias)) << label;
          }
        }
      }
    }
  }
}

TEST_F(AddLayerNormGpu, ReferenceForcedByEnvironment) {
  const auto opts = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  const auto x = at::randn({4, 64}, opts), w = at::ones({64}, opts), b = at::zeros({64}, opts);
  setenv("DS_REFERENCE_ADD_LAYER_NORM", "1", 1);
  EXPECT_FALSE(ops::add_layer_norm_is_fused(x, x, w, b));
  unsetenv("DS_REFERENCE_ADD_LAYER_NORM");
  EXPECT_TRUE(ops::add_layer_norm_is_fused(x, x, w, b));
  EXPECT_FALSE(ops::add_layer_norm_is_fused(at::randn({4, 8193}, opts), at::randn({4, 8193}, opts),
                                            at::ones({8193}, opts), at::zeros({8193}, opts)));
  EXPECT_TRUE(ops::add_layer_norm_is_fused(x, x, w, b, b));
  EXPECT_FALSE(ops::add_layer_norm_is_fused(x, x, w, b, b.cpu()));  // a branch bias on another device
}

}  // namespace
