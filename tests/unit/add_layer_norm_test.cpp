// deepspeed::ops::add_layer_norm on the CPU: the reference path (one autograd node around ATen's LayerNorm) against
// the unfused composition `h = residual + (branch + branch_bias); y = at::layer_norm(h)` differentiated by
// autograd, with and without the branch bias, and against central differences in double. The CUDA kernels:
// add_layer_norm_gpu_test.
#include <cmath>
#include <cstdlib>
#include <functional>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include "deepspeed/ops/add_layer_norm.h"
#include "deepspeed/util/error.h"

namespace {

namespace ops = deepspeed::ops;
constexpr double kEps = 1e-5;

using AddLayerNormFn =
    std::function<std::pair<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                    const at::Tensor&, double, const at::Tensor&)>;

// fp32 and fp64 only: there `branch + branch_bias` is the op's fp32 (fp64) sum rounded once.
std::pair<at::Tensor, at::Tensor> unfused(const at::Tensor& residual, const at::Tensor& branch,
                                          const at::Tensor& weight, const at::Tensor& bias, double eps,
                                          const at::Tensor& branch_bias) {
  at::Tensor h = residual + (branch_bias.defined() ? branch + branch_bias : branch);
  return {h, at::layer_norm(h, {h.size(-1)}, weight, bias, eps)};
}

struct Outcome {
  at::Tensor h, y, d_residual, d_branch, d_weight, d_bias, d_branch_bias;  // undefined where none arrived
};

// Outputs of fn and the gradients of  Σ h·a (when use_h) + Σ y·b (when use_y): a is h's gradient from its other
// uses (dh_out), b is dy. branch_bias may be undefined.
Outcome run(const AddLayerNormFn& fn, const at::Tensor& residual, const at::Tensor& branch, const at::Tensor& weight,
            const at::Tensor& bias, const at::Tensor& a, const at::Tensor& b, bool use_h, bool use_y,
            const at::Tensor& branch_bias = {}) {
  auto r = residual.detach().clone().requires_grad_(true), x = branch.detach().clone().requires_grad_(true);
  auto w = weight.detach().clone().requires_grad_(true), bb = bias.detach().clone().requires_grad_(true);
  auto rb = branch_bias.defined() ? branch_bias.detach().clone().requires_grad_(true) : at::Tensor();
  auto [h, y] = fn(r, x, w, bb, kEps, rb);
  std::vector<at::Tensor> outputs, grads;
  if (use_h) {
    outputs.push_back(h);
    grads.push_back(a);
  }
  if (use_y) {
    outputs.push_back(y);
    grads.push_back(b);
  }
  torch::autograd::backward(outputs, grads);
  return {h.detach(), y.detach(), r.grad(), x.grad(), w.grad(), bb.grad(), rb.defined() ? rb.grad() : at::Tensor()};
}

void expect_close(const at::Tensor& got, const at::Tensor& want, double tol, const char* what) {
  ASSERT_EQ(got.defined(), want.defined()) << what;
  if (!want.defined()) return;
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  const double err = (got - want).abs().max().item<double>();
  EXPECT_LE(err, tol * (1.0 + want.abs().max().item<double>())) << what << ": max |diff| " << err;
}

class AddLayerNormCpu : public ::testing::TestWithParam<at::ScalarType> {};

TEST_P(AddLayerNormCpu, ReferenceMatchesTheUnfusedComposition) {
  const auto dtype = GetParam();
  // Both run ATen's LayerNorm kernels; only where the two gradients of h are added differs.
  const double tol = dtype == at::kDouble ? 1e-12 : 1e-6;
  at::manual_seed(0);
  const auto opts = at::TensorOptions().dtype(dtype);
  const auto residual = at::randn({2, 3, 37}, opts), branch = at::randn({2, 3, 37}, opts);
  const auto weight = 1 + 0.1 * at::randn({37}, opts), bias = 0.1 * at::randn({37}, opts);
  const auto a = at::randn({2, 3, 37}, opts), b = at::randn({2, 3, 37}, opts);
  EXPECT_FALSE(ops::add_layer_norm_is_fused(residual, branch, weight, bias));
  // dh_out defined (h used elsewhere, as in a transformer block), undefined (only y used), and dy undefined.
  for (const auto [use_h, use_y] : {std::pair{true, true}, std::pair{false, true}, std::pair{true, false}}) {
    SCOPED_TRACE(::testing::Message() << "use_h " << use_h << " use_y " << use_y);
    const Outcome got = run(ops::add_layer_norm, residual, branch, weight, bias, a, b, use_h, use_y);
    const Outcome want = run(unfused, residual, branch, weight, bias, a, b, use_h, use_y);
    expect_close(got.h, want.h, 0.0, "h");
    expect_close(got.y, want.y, tol, "y");
    expect_close(got.d_residual, want.d_residual, tol, "d residual");
    expect_close(got.d_branch, want.d_branch, tol, "d branch");
    expect_close(got.d_weight, want.d_weight, tol, "d weight");
    expect_close(got.d_bias, want.d_bias, tol, "d bias");
  }
}

// The projection's bias folded in: h = residual + (branch + branch_bias), and branch_bias's gradient is the sum of
// d(branch) over all rows (with h's other gradient alone when y is unused).
TEST_P(AddLayerNormCpu, BranchBiasMatchesTheUnfusedComposition) {
  const auto dtype = GetParam();
  const double tol = dtype == at::kDouble ? 1e-12 : 1e-6;
  at::manual_seed(10);
  const auto opts = at::TensorOptions().dtype(dtype);
  const auto residual = at::randn({2, 3, 37}, opts), branch = at::randn({2, 3, 37}, opts);
  const auto weight = 1 + 0.1 * at::randn({37}, opts), bias = 0.1 * at::randn({37}, opts);
  const auto branch_bias = at::randn({37}, opts);  // as large as the branch: dropping it changes everything
  const auto a = at::randn({2, 3, 37}, opts), b = at::randn({2, 3, 37}, opts);
  EXPECT_FALSE(ops::add_layer_norm_is_fused(residual, branch, weight, bias, branch_bias));
  for (const auto [use_h, use_y] : {std::pair{true, true}, std::pair{false, true}, std::pair{true, false}}) {
    SCOPED_TRACE(::testing::Message() << "use_h " << use_h << " use_y " << use_y);
    const Outcome got = run(ops::add_layer_norm, residual, branch, weight, bias, a, b, use_h, use_y, branch_bias);
    const Outcome want = run(unfused, residual, branch, weight, bias, a, b, use_h, use_y, branch_bias);
    expect_close(got.h, want.h, 0.0, "h");
    expect_close(got.y, want.y, tol, "y");
    expect_close(got.d_residual, want.d_residual, tol, "d residual");
    expect_close(got.d_branch, want.d_branch, tol, "d branch");
    expect_close(got.d_weight, want.d_weight, tol, "d weight");
    expect_close(got.d_bias, want.d_bias, tol, "d bias");
    ASSERT_TRUE(got.d_branch_bias.defined());
    expect_close(got.d_branch_bias, want.d_branch_bias, tol, "d branch_bias");
    // The definition, exactly: the column sum of the d(branch) the op returns.
    EXPECT_TRUE(at::equal(got.d_branch_bias, got.d_branch.reshape({-1, 37}).sum(0)));
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, AddLayerNormCpu, ::testing::Values(at::kFloat, at::kDouble));

// Gradcheck: d/dθ of L = Σ h·a + Σ y·b by central differences in double, for every element of every input, the
// branch bias included (the fifth input).
TEST(AddLayerNormCpuGradcheck, MatchesCentralDifferences) {
  at::manual_seed(1);
  const auto opts = at::TensorOptions().dtype(at::kDouble);
  std::vector<at::Tensor> inputs{at::randn({3, 6}, opts), at::randn({3, 6}, opts), 1 + 0.3 * at::randn({6}, opts),
                                 0.3 * at::randn({6}, opts), at::randn({6}, opts)};
  const auto a = at::randn({3, 6}, opts), b = at::randn({3, 6}, opts);
  const auto loss = [&](const std::vector<at::Tensor>& in) {
    auto [h, y] = ops::add_layer_norm(in[0], in[1], in[2], in[3], kEps, in[4]);
    return (h * a).sum() + (y * b).sum();
  };
  std::vector<at::Tensor> leaves;
  for (const auto& t : inputs) leaves.push_back(t.clone().requires_grad_(true));
  const auto analytic = torch::autograd::grad({loss(leaves)}, leaves);
  const double step = 1e-6;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    auto numeric = at::zeros_like(inputs[i]);
    for (std::int64_t j = 0; j < inputs[i].numel(); ++j) {
      auto plus = inputs, minus = inputs;
      plus[i] = inputs[i].clone();
      minus[i] = inputs[i].clone();
      plus[i].view(-1)[j] += step;
      minus[i].view(-1)[j] -= step;
      numeric.view(-1)[j] = (loss(plus) - loss(minus)) / (2 * step);
    }
    EXPECT_TRUE(at::allclose(analytic[i], numeric, 1e-6, 1e-6))
        << "input " << i << " max |diff| " << (analytic[i] - numeric).abs().max().item<double>();
  }
}

// x + x: both gradients are the same tensor and land on one leaf, which must receive twice dh.
TEST(AddLayerNormCpuAutograd, SameTensorAsResidualAndBranch) {
  at::manual_seed(2);
  const auto x = at::randn({4, 8}, at::kDouble), w = at::randn({8}, at::kDouble), b = at::randn({8}, at::kDouble);
  const auto a = at::randn({4, 8}, at::kDouble), dy = at::randn({4, 8}, at::kDouble);
  auto x1 = x.clone().requires_grad_(true), x2 = x.clone().requires_grad_(true);
  auto [h1, y1] = ops::add_layer_norm(x1, x1, w, b, kEps);
  torch::autograd::backward({h1, y1}, {a, dy});
  auto [h2, y2] = unfused(x2, x2, w, b, kEps, {});
  torch::autograd::backward({h2, y2}, {a, dy});
  EXPECT_TRUE(at::allclose(x1.grad(), x2.grad(), 1e-12, 1e-12));
}

// bf16 activations with fp32 parameters: the LayerNorm runs in fp32 on the rounded h, y is rounded once.
TEST(AddLayerNormCpuMixed, Fp32ParametersWith16BitInputs) {
  at::manual_seed(3);
  const auto r = at::randn({5, 24}).to(at::kBFloat16), x = at::randn({5, 24}).to(at::kBFloat16);
  const auto w = at::randn({24}), b = at::randn({24});
  auto [h, y] = ops::add_layer_norm(r, x, w, b, kEps);
  EXPECT_EQ(h.scalar_type(), at::kBFloat16);
  EXPECT_EQ(y.scalar_type(), at::kBFloat16);
  EXPECT_TRUE(at::equal(h, r + x));
  EXPECT_TRUE(at::equal(y, at::layer_norm((r + x).to(at::kFloat), {24}, w, b, kEps).to(at::kBFloat16)));
}

// bf16 activations, the branch bias in bf16 or fp32 (with the LayerNorm's parameters): the biased branch is rounded
// to bf16 before the residual add (as a biased GEMM's stored output), then h is rounded again; the bias gradient is
// the fp32 sum of the bf16 d(branch), rounded once.
TEST(AddLayerNormCpuMixed, BranchBiasRoundsLikeAStoredGemmOutput) {
  at::manual_seed(4);
  const auto r = at::randn({64, 24}).to(at::kBFloat16), x = at::randn({64, 24}).to(at::kBFloat16);
  const auto dy = at::randn({64, 24}).to(at::kBFloat16), a = at::randn({64, 24}).to(at::kBFloat16);
  for (const auto pdtype : {at::kBFloat16, at::kFloat}) {
    SCOPED_TRACE(c10::toString(pdtype));
    const auto w = at::randn({24}).to(pdtype), b = at::randn({24}).to(pdtype);
    auto rb = (0.3 * at::randn({24})).to(pdtype).requires_grad_(true);
    auto xx = x.clone().requires_grad_(true);
    auto [h, y] = ops::add_layer_norm(r, xx, w, b, kEps, rb);
    torch::autograd::backward({h, y}, {a, dy});
    const auto biased = (x.to(at::kFloat) + rb.detach().to(at::kFloat)).to(at::kBFloat16);
    EXPECT_TRUE(at::equal(h, r + biased));
    if (pdtype == at::kFloat) {  // bf16 parameters: ATen's bf16 LayerNorm, whose last rounding is its own
      EXPECT_TRUE(at::equal(y, at::layer_norm((r + biased).to(at::kFloat), {24}, w, b, kEps).to(at::kBFloat16)));
    }
    EXPECT_EQ(rb.grad().scalar_type(), pdtype);
    EXPECT_TRUE(at::equal(rb.grad(), xx.grad().to(at::kFloat).sum(0).to(pdtype)));
  }
}

TEST(AddLayerNormCpuArguments, MismatchesAreUsageErrors) {
  const auto x = at::randn({2, 8}), w = at::ones({8}), b = at::zeros({8});
  EXPECT_THROW(ops::add_layer_norm(x, at::randn({2, 7}), w, b, kEps), deepspeed::UsageError);
  EXPECT_THROW(ops::add_layer_norm(x, x, at::ones({7}), b, kEps), deepspeed::UsageError);
  EXPECT_THROW(ops::add_layer_norm(x, x.to(at::kDouble), w, b, kEps), deepspeed::UsageError);
  EXPECT_THROW(ops::add_layer_norm(x.to(at::kBFloat16), x.to(at::kBFloat16), w.to(at::kHalf), b.to(at::kHalf), kEps),
               deepspeed::UsageError);
  EXPECT_THROW(ops::add_layer_norm(x, x, w, b, kEps, at::zeros({7})), deepspeed::UsageError);
  EXPECT_THROW(ops::add_layer_norm(x, x, w, b, kEps, at::zeros({2, 8})), deepspeed::UsageError);
  EXPECT_THROW(ops::add_layer_norm(x, x, w, b, kEps, at::zeros({8}, at::kDouble)), deepspeed::UsageError);
}

TEST(AddLayerNormCpuArguments, ReferenceForcedByEnvironment) {
  setenv("DS_REFERENCE_ADD_LAYER_NORM", "1", 1);
  EXPECT_TRUE(ops::add_layer_norm_reference_forced());
  unsetenv("DS_REFERENCE_ADD_LAYER_NORM");
  EXPECT_FALSE(ops::add_layer_norm_reference_forced());
}

}  // namespace
