// The tuned GEMM choice that keeps the heuristic's results (LtChoice::kTimedExact, DS_GEMM_TUNED=1): on GPT-2's
// shapes, every product of a linear layer (forward with the bias epilogue, dx, dW with the bias gradient in the
// BGRADB epilogue, dW alone) gives bit for bit what the heuristic's first algorithm gives, whichever candidate the
// timings chose, with and without the memset-free offer; and the output hash it tells candidates apart with sees
// one changed word, ignores the padding between columns, and calls a constant matrix constant.
#include <cstdio>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include "src/ops/linear_gemms.h"
#include "src/ops/lt_matmul.h"

namespace deepspeed {
namespace {

using ops::detail::LtChoice;
using ops::detail::LtProblem;

at::Tensor bits_of(const at::Tensor& t) {
  return t.view(t.element_size() == 2 ? at::kShort : at::kInt).clone();
}

TEST(LtOutputBits, SeesOneWordIgnoresThePaddingCallsAConstantConstant) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const auto o = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  // 5 columns of 7 values with leading dimension 9, as cuBLASLt counts: a [5, 9] row-major buffer.
  at::Tensor buffer = at::randn({5, 9}, o);
  LtProblem p;
  p.m = 7, p.n = 5, p.ldd = 9, p.d = buffer.data_ptr(), p.type = at::kBFloat16;
  const auto first = ops::detail::lt_output_bits(p);
  EXPECT_TRUE(first.varied);
  EXPECT_EQ(ops::detail::lt_output_bits(p), first) << "the same bits, the same hash";
  buffer.index_put_({at::indexing::Slice(), at::indexing::Slice(7, 9)}, 3.0);
  EXPECT_EQ(ops::detail::lt_output_bits(p), first) << "rows m … ldd−1 are padding";
  const at::Tensor kept = buffer.clone();
  buffer[4][6] = buffer[4][6].item<float>() + 1.0f;
  EXPECT_NE(ops::detail::lt_output_bits(p), first) << "the last word changed";
  buffer.copy_(kept);
  buffer[0][0] = -buffer[0][0].item<float>();
  EXPECT_NE(ops::detail::lt_output_bits(p), first) << "the first word's sign changed";
  buffer.copy_(kept);
  // Two words swapped: the same multiset of values, another matrix.
  buffer[1][2] = kept[2][1];
  buffer[2][1] = kept[1][2];
  if (!at::equal(kept[1][2], kept[2][1])) EXPECT_NE(ops::detail::lt_output_bits(p), first) << "two words swapped";
  buffer.fill_(0.5);
  EXPECT_FALSE(ops::detail::lt_output_bits(p).varied);
  // The BGRADB epilogue's bias gradient is an output too: a change there changes the hash.
  at::Tensor bias = at::randn({5}, o);
  p.epilogue = LtProblem::Epilogue::kBiasGradB, p.bias = bias.data_ptr(), p.bias_type = at::kBFloat16;
  const auto with_bias = ops::detail::lt_output_bits(p);
  EXPECT_TRUE(with_bias.varied);
  bias[3] = bias[3].item<float>() * 2.0f + 1.0f;
  EXPECT_NE(ops::detail::lt_output_bits(p), with_bias);
}

// One product of a layer with its outputs, run by lt_matmul with `choice`; returns the outputs' bits.
std::vector<at::Tensor> run(const std::string& which, const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                            const at::Tensor& dy, LtChoice choice) {
  const auto o = x.options();
  at::Tensor out, bias_out;
  bool ran = false;
  if (which == "fwd") {
    out = at::empty({x.size(0), w.size(0)}, o);
    ran = ops::detail::linear_forward(x, w, b, out, choice);
  } else if (which == "dx") {
    out = at::empty({dy.size(0), w.size(1)}, o);
    ran = ops::detail::linear_input_grad(dy, w, out, choice);
  } else {
    out = at::empty(w.sizes(), o);
    if (which == "dW+db") bias_out = at::empty({dy.size(1)}, o);
    ran = ops::detail::weight_and_bias_grad(dy, x, out, bias_out, choice);
  }
  EXPECT_TRUE(ran) << which << ": cuBLASLt offers no algorithm";
  std::vector<at::Tensor> bits{bits_of(out)};
  if (bias_out.defined()) bits.push_back(bits_of(bias_out));
  return bits;
}

TEST(LtMatmul, TimedExactGivesTheHeuristicsBits) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  setenv("DS_GEMM_TUNED", "1", 1);
  const bool built = ops::detail::gemm_tuning_requested();
  unsetenv("DS_GEMM_TUNED");
  if (!built) GTEST_SKIP() << "built without cuBLASLt's header";
  struct Shape {
    std::int64_t rows, in, out;
  };
  // GPT-2 124M's c_attn and mlp.c_proj at micro-batch 8, 1.5B's attn.c_proj and c_fc at 4 (long k for dW: the
  // split-K candidates), and a small odd one.
  const std::vector<Shape> shapes = {{8192, 768, 2304}, {8192, 3072, 768}, {4096, 1600, 1600}, {4096, 1600, 6400},
                                     {333, 64, 200}};
  // Both ways of offering: the default (the algorithms offered within no workspace first, run without one) and
  // DS_GEMM_MEMSET_FREE=0 (every algorithm within LibTorch's workspace).
  for (const bool memset_free : {true, false}) {
    if (!memset_free) setenv("DS_GEMM_MEMSET_FREE", "0", 1);
    ASSERT_EQ(ops::detail::lt_memset_free_requested(), memset_free);
    for (const auto dtype : {at::kBFloat16, at::kHalf}) {
      for (const auto& s : shapes) {
        at::manual_seed(5);
        const auto o = at::TensorOptions().device(at::kCUDA).dtype(dtype);
        const at::Tensor x = at::randn({s.rows, s.in}, o), w = at::randn({s.out, s.in}, o) * 0.02,
                         b = at::randn({s.out}, o), dy = at::randn({s.rows, s.out}, o) * 0.01;
        for (const std::string which : {"fwd", "dx", "dW+db", "dW"}) {
          const auto heuristic = run(which, x, w, b, dy, LtChoice::kHeuristic);
          const auto exact = run(which, x, w, b, dy, LtChoice::kTimedExact);
          const auto again = run(which, x, w, b, dy, LtChoice::kTimedExact);  // the cached choice
          const std::string label = std::string(memset_free ? "" : "DS_GEMM_MEMSET_FREE=0 ") +
                                    c10::toString(dtype) + " " + which + " " + std::to_string(s.rows) + "×" +
                                    std::to_string(s.in) + "→" + std::to_string(s.out);
          ASSERT_EQ(heuristic.size(), exact.size()) << label;
          for (std::size_t i = 0; i < heuristic.size(); ++i) {
            EXPECT_TRUE(at::equal(heuristic[i], exact[i])) << label << ": output " << i;
            EXPECT_TRUE(at::equal(exact[i], again[i])) << label << ": output " << i << ", cached";
          }
        }
      }
    }
    unsetenv("DS_GEMM_MEMSET_FREE");
  }
}

}  // namespace
}  // namespace deepspeed
