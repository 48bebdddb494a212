// deepspeed::ops::cross_entropy: the fused CUDA kernel against the fp32 reference (loss and gradient), on
// both of its load paths (16-byte packs and scalar), for bf16/fp16/fp32 logits.
#include <cmath>
#include <cstdlib>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <c10/core/GradMode.h>

#include "deepspeed/ops/cross_entropy.h"
#include "tests/unit/cross_entropy_helpers.h"

namespace {

namespace ops = deepspeed::ops;
using deepspeed::ops::testing::loss_and_grad;

class CrossEntropyGpu : public ::testing::TestWithParam<std::tuple<at::ScalarType, std::int64_t>> {
 protected:
  void SetUp() override {
    if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  }
};

TEST_P(CrossEntropyGpu, MatchesTheFp32Reference) {
  const auto [dtype, vocab] = GetParam();
  at::manual_seed(1);
  const std::int64_t rows = 300;
  const auto opts = at::TensorOptions().device(at::kCUDA);
  const auto logits = (at::randn({rows, vocab}, opts) * 4).to(dtype);
  const auto targets = at::randint(0, vocab, {rows}, opts.dtype(at::kLong));
  ASSERT_TRUE(ops::cross_entropy_is_fused(logits, targets));
  const auto fused = loss_and_grad(ops::cross_entropy, logits, targets, 3.0);
  const auto ref = loss_and_grad(ops::cross_entropy_reference, logits, targets, 3.0);
  EXPECT_NEAR(fused.loss, ref.loss, 1e-5 * std::abs(ref.loss)) << "vocab " << vocab;
  // Both gradients are computed in fp32 and rounded once to the logits' dtype; values at a binade edge may
  // round apart by one step of the binade above: allow two units in the last place, relative.
  const double rel = dtype == at::kBFloat16 ? 1.6e-2 : dtype == at::kHalf ? 2e-3 : 1e-5;
  // fp16 values below 6.1e-5 are subnormal, spaced 2^-24 apart, and the fused gradient is rounded before the
  // ×3 of backward scales it: allow a few such steps there. (An fp32 emulation of both paths gives the same
  // maximum differences as the H100 did: 7.6e-6 fp16, 6.1e-5 bf16.)
  const double tiny = dtype == at::kHalf ? 3.0 * 4 * std::ldexp(1.0, -24) : 3.0 / static_cast<double>(rows) * 1e-6;
  const auto diff = (fused.grad - ref.grad).abs();
  const auto bound = ref.grad.abs() * rel + tiny;
  EXPECT_TRUE(at::all(diff <= bound).item<bool>())
      << "max |diff| " << diff.max().item<double>() << " at dtype " << c10::toString(dtype) << " vocab " << vocab;
}

INSTANTIATE_TEST_SUITE_P(DtypesAndPaths, CrossEntropyGpu,
                         ::testing::Combine(::testing::Values(at::kBFloat16, at::kHalf, at::kFloat),
                                            // 50304: 16-byte packs; 1001: scalar path; 8: fewer values than threads
                                            ::testing::Values(std::int64_t{50304}, std::int64_t{1001}, std::int64_t{8})));

TEST_F(CrossEntropyGpu, MinusInfinityLogitsAndBadTargets) {
  if (!at::hasCUDA()) GTEST_SKIP();
  const auto opts = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  auto logits = at::zeros({2, 16}, opts);
  logits.index_put_({0, at::indexing::Slice(8, 16)}, -INFINITY);  // masked half: softmax over the first 8
  const auto good = at::tensor({3, 5}, at::TensorOptions().device(at::kCUDA).dtype(at::kLong));
  const auto fused = loss_and_grad(ops::cross_entropy, logits, good);
  const auto ref = loss_and_grad(ops::cross_entropy_reference, logits, good);
  EXPECT_NEAR(fused.loss, ref.loss, 1e-6);
  EXPECT_TRUE(at::allclose(fused.grad, ref.grad, 1e-2, 1e-6));
  const auto bad = at::tensor({3, 16}, at::TensorOptions().device(at::kCUDA).dtype(at::kLong));
  auto x = logits.clone().requires_grad_(true);  // the fused path runs when autograd records
  EXPECT_TRUE(std::isnan(ops::cross_entropy(x, bad).item<double>()));  // so an fp16 step is skipped
}

TEST_F(CrossEntropyGpu, SecondBackwardIsAClearError) {
  if (!at::hasCUDA()) GTEST_SKIP();
  const auto opts = at::TensorOptions().device(at::kCUDA);
  auto x = at::randn({4, 64}, opts).to(at::kBFloat16).requires_grad_(true);
  const auto t = at::randint(0, 64, {4}, opts.dtype(at::kLong));
  auto loss = ops::cross_entropy(x, t);
  loss.backward({}, /*retain_graph=*/true);
  EXPECT_ANY_THROW(loss.backward());
}

TEST_F(CrossEntropyGpu, NoGradRunsTheReference) {
  if (!at::hasCUDA()) GTEST_SKIP();
  const auto opts = at::TensorOptions().device(at::kCUDA);
  const auto x = at::randn({4, 64}, opts).to(at::kBFloat16);
  const auto t = at::randint(0, 64, {4}, opts.dtype(at::kLong));
  at::NoGradGuard no_grad;
  EXPECT_DOUBLE_EQ(ops::cross_entropy(x, t).item<double>(), ops::cross_entropy_reference(x, t).item<double>());
}

TEST_F(CrossEntropyGpu, ReferenceForcedByEnvironment) {
  if (!at::hasCUDA()) GTEST_SKIP();
  const auto opts = at::TensorOptions().device(at::kCUDA);
  const auto x = at::randn({4, 64}, opts).to(at::kBFloat16);
  const auto t = at::randint(0, 64, {4}, opts.dtype(at::kLong));
  setenv("DS_REFERENCE_CROSS_ENTROPY", "1", 1);
  EXPECT_FALSE(ops::cross_entropy_is_fused(x, t));
  unsetenv("DS_REFERENCE_CROSS_ENTROPY");
  EXPECT_TRUE(ops::cross_entropy_is_fused(x, t));
}

}  // namespace
