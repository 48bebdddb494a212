// deepspeed::ops::cross_entropy: the fused CUDA kernel against the fp32 reference (loss and gradient), on
// both of its load paths (16-byte packs and scalar), for bf16/fp16/fp32 logits.
#include <cmath>
#include <cstdlib>
#include <string>

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
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
  // Factor 1: the forward's gradient is the answer; 3: backward recomputes it with the factor inside.
  for (const double factor : {1.0, 3.0}) {
    const auto fused = loss_and_grad(ops::cross_entropy, logits, targets, factor);
    const auto ref = loss_and_grad(ops::cross_entropy_reference, logits, targets, factor);
    EXPECT_NEAR(fused.loss, ref.loss, 1e-5 * std::abs(ref.loss)) << "vocab " << vocab;
    // Both gradients are computed in fp32 and rounded once to the logits' dtype; the fp32 values may differ in
    // the last bit (another order of the same products), so a value at a rounding boundary may land one step
    // of its binade apart: two units in the last place, relative; one subnormal step absolute for fp16.
    const double rel = dtype == at::kBFloat16 ? 1.6e-2 : dtype == at::kHalf ? 2e-3 : 1e-5;
    const double tiny = dtype == at::kHalf ? 2 * std::ldexp(1.0, -24) : factor / static_cast<double>(rows) * 1e-6;
    const auto diff = (fused.grad - ref.grad).abs();
    const auto bound = ref.grad.abs() * rel + tiny;
    EXPECT_TRUE(at::all(diff <= bound).item<bool>()) << "max |diff| " << diff.max().item<double>() << " at dtype "
                                                     << c10::toString(dtype) << " vocab " << vocab << " factor "
                                                     << factor;
  }
}

INSTANTIATE_TEST_SUITE_P(DtypesAndPaths, CrossEntropyGpu,
                         ::testing::Combine(::testing::Values(at::kBFloat16, at::kHalf, at::kFloat),
                                            // 50304: 16-byte packs; 1001: scalar path; 8: fewer values than threads
                                            ::testing::Values(std::int64_t{50304}, std::int64_t{1001}, std::int64_t{8})));

// DS_CROSS_ENTROPY_STAGED=1 (the row kept in shared memory between the forward's passes) gives the unstaged
// kernel's loss and gradient bit for bit, in every dtype (fp32 GPT-2 rows are too long to stage: the switch then
// changes nothing), with -inf logits and a bad target among the rows.
TEST_F(CrossEntropyGpu, StagedRowsEqualTheUnstagedKernelBitwise) {
  if (!at::hasCUDA()) GTEST_SKIP();
  for (const auto dtype : {at::kBFloat16, at::kHalf, at::kFloat}) {
    for (const std::int64_t vocab : {std::int64_t{50304}, std::int64_t{1024}, std::int64_t{8}}) {
      at::manual_seed(2);
      const auto opts = at::TensorOptions().device(at::kCUDA);
      auto logits = (at::randn({257, vocab}, opts) * 4).to(dtype);
      logits.index_put_({3, at::indexing::Slice(0, vocab / 2)}, -INFINITY);
      auto good = at::randint(0, vocab, {257}, opts.dtype(at::kLong));
      good.index_put_({3}, vocab - 1);  // row 3's target among its finite logits: every row's loss is a number
      auto bad = good.clone();
      bad.index_put_({5}, vocab);  // out of range: a NaN loss for that row, so the mean is NaN too
      const auto run = [&](const char* staged, const at::Tensor& targets) {
        setenv("DS_CROSS_ENTROPY_STAGED", staged, 1);
        auto x = logits.clone().requires_grad_(true);
        // The switch must have taken the staged kernel where it can: 16-bit rows on a device that grants their
        // bytes of shared memory (every row here on an H100/H200; fp32 GPT-2 rows are too long anywhere).
        const bool can = dtype != at::kFloat || vocab * 4 <= 112 * 1024;
        const bool grants = at::cuda::getCurrentDeviceProperties()->sharedMemPerBlockOptin >= 112 * 1024;
        if (std::string(staged) == "1" && can && grants) {
          EXPECT_TRUE(ops::cross_entropy_is_staged(x, targets)) << c10::toString(dtype) << " vocab " << vocab;
        }
        if (std::string(staged) == "0") EXPECT_FALSE(ops::cross_entropy_is_staged(x, targets));
        const at::Tensor loss = ops::cross_entropy(x, targets);
        loss.backward();
        unsetenv("DS_CROSS_ENTROPY_STAGED");
        return std::make_pair(loss.detach(), x.grad());
      };
      const std::string label = std::string(c10::toString(dtype)) + " vocab " + std::to_string(vocab);
      for (const bool with_bad_row : {false, true}) {
        const auto& targets = with_bad_row ? bad : good;
        const auto [loss0, grad0] = run("0", targets);
        const auto [loss1, grad1] = run("1", targets);
        // The loss is compared where it is a number (a NaN mean says nothing of the other rows).
        if (!with_bad_row) {
          EXPECT_TRUE(std::isfinite(loss0.item<double>())) << label;
          EXPECT_TRUE(at::equal(loss0, loss1)) << label;
        }
        EXPECT_TRUE(at::equal(grad0.nan_to_num(), grad1.nan_to_num())) << label << (with_bad_row ? ", bad row" : "");
      }
    }
  }
}

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

// The packed sum's special cases (cross_entropy_kernel.cu, accumulate_pack): a NaN beside finite logits makes
// its row's loss NaN (a pack's maximum skips NaN; its term does not), a pack of NaN and −∞ alone too, and a row
// whose first packs are all −∞ starts its sum from the first finite pack. Vocabulary 64: eight bf16 packs.
TEST_F(CrossEntropyGpu, PackedSumKeepsNaNAndMinusInfinity) {
  if (!at::hasCUDA()) GTEST_SKIP();
  const auto opts = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  auto logits = at::randn({3, 64}, opts);
  logits.index_put_({0, 5}, NAN);
  logits.index_put_({1, at::indexing::Slice(0, 8)}, -INFINITY);
  logits.index_put_({1, 3}, NAN);
  logits.index_put_({2, at::indexing::Slice(0, 32)}, -INFINITY);
  const auto targets = at::tensor({1, 9, 40}, at::TensorOptions().device(at::kCUDA).dtype(at::kLong));
  const auto loss_of_row = [&](std::int64_t r) {
    using at::indexing::Slice;
    auto x = logits.index({Slice(r, r + 1)}).clone().requires_grad_(true);  // the fused path runs when autograd records
    const auto t = targets.index({Slice(r, r + 1)});
    EXPECT_TRUE(ops::cross_entropy_is_fused(x, t));
    return std::make_pair(ops::cross_entropy(x, t).item<double>(),
                          ops::cross_entropy_reference(x.detach(), t).item<double>());
  };
  EXPECT_TRUE(std::isnan(loss_of_row(0).first));
  EXPECT_TRUE(std::isnan(loss_of_row(1).first));
  const auto [got, want] = loss_of_row(2);
  EXPECT_NEAR(got, want, 1e-5 * std::abs(want));
}

// A +∞ logit makes its row's loss NaN, as ATen's log_softmax does (e^(∞ − ∞) in its sum), in both kernels
// (packs: vocabulary 64; elements: 63) and wherever the ∞ sits; before, a row whose other logits were all −∞
// gave ∞, and one of finite logits NaN or ∞ depending on the thread that held the ∞ (kernel_math_test).
TEST_F(CrossEntropyGpu, PlusInfinityLogitMakesTheLossNaN) {
  if (!at::hasCUDA()) GTEST_SKIP();
  const auto opts = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  for (std::int64_t vocab : {64, 63}) {
    for (bool others_minus_infinity : {false, true}) {
      auto logits = others_minus_infinity ? at::full({2, vocab}, -INFINITY, opts) : at::randn({2, vocab}, opts);
      logits.index_put_({0, 3}, INFINITY);
      logits.index_put_({1, vocab - 1}, INFINITY);
      const auto targets = at::tensor({1, 2}, at::TensorOptions().device(at::kCUDA).dtype(at::kLong));
      for (std::int64_t r = 0; r < 2; ++r) {
        using at::indexing::Slice;
        auto x = logits.index({Slice(r, r + 1)}).clone().requires_grad_(true);
        const auto t = targets.index({Slice(r, r + 1)});
        EXPECT_TRUE(ops::cross_entropy_is_fused(x, t));
        EXPECT_TRUE(std::isnan(ops::cross_entropy(x, t).item<double>()))
            << "vocab " << vocab << ", row " << r << (others_minus_infinity ? ", others −∞" : "");
        EXPECT_TRUE(std::isnan(ops::cross_entropy_reference(x.detach(), t).item<double>()));
      }
    }
  }
}

// fp16 with a loss scale, as the engine differentiates it: (softmax / rows) of a 50304-way row is ~1e-8, below
// fp16's smallest subnormal, so only a gradient computed with the scale inside keeps it (as the reference does).
TEST_F(CrossEntropyGpu, LossScaleReachesSmallFp16Gradients) {
  if (!at::hasCUDA()) GTEST_SKIP();
  at::manual_seed(2);
  const std::int64_t rows = 2048, vocab = 50304;
  const auto opts = at::TensorOptions().device(at::kCUDA);
  const auto logits = at::randn({rows, vocab}, opts).to(at::kHalf);
  const auto targets = at::randint(0, vocab, {rows}, opts.dtype(at::kLong));
  const double loss_scale = 65536.0;
  const auto fused = loss_and_grad(ops::cross_entropy, logits, targets, loss_scale);
  const auto ref = loss_and_grad(ops::cross_entropy_reference, logits, targets, loss_scale);
  const auto nonzero = [](const at::Tensor& g) { return (g != 0).sum().item<std::int64_t>(); };
  EXPECT_GT(nonzero(ref.grad), rows * vocab / 2);  // the premise: the scaled values are representable
  EXPECT_EQ(nonzero(fused.grad), nonzero(ref.grad));
  const auto diff = (fused.grad - ref.grad).abs();
  EXPECT_TRUE(at::all(diff <= ref.grad.abs() * 2e-3 + 2 * std::ldexp(1.0, -24)).item<bool>())
      << "max |diff| " << diff.max().item<double>();
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
