// ops::qkv_attention's fused path — LibTorch's cuDNN forward on views of qkv, cuDNN's backward through its graph
// API writing dq, dk and dv into one [B, T, 3C] gradient — against its reference (split, LibTorch's SDPA with the
// cuDNN backend first, autograd's join), both held to float64 attention by definition. The bound is comparative:
// the fused path no further from float64 than the reference path plus a quarter, plus half an ulp of the
// largest value (each case prints both errors, in ulps of the largest value, for docs/kernels.md). bf16 and fp16,
// causal and not, head dims 64 and 128, a length that is not a multiple of 64; the deterministic algorithm repeats
// bit for bit; the graph builds for GPT-2's shapes.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/ops/_scaled_dot_product_cudnn_attention.h>
#include <ATen/ops/_scaled_dot_product_cudnn_attention_backward.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "deepspeed/ops/attention.h"
#include "deepspeed/ops/qkv_attention.h"
#include "src/ops/cudnn_sdpa.h"
#include "tests/support/attention_by_definition.h"
#include "tests/support/scoped_env.h"

namespace deepspeed {
namespace {

struct Shape {
  std::int64_t b, t, heads, d;
};

struct Result {
  at::Tensor y, grad;
};

Result run(bool fused, at::ScalarType dtype, const Shape& s, bool causal, const at::Tensor& qkv0,
           const at::Tensor& dy) {
  const testing::ScopedEnv forced("DS_REFERENCE_QKV_ATTENTION", fused ? nullptr : "1");
  // Lengths that are multiples of 64 are what LibTorch's cuDNN attention takes on any cuDNN 9; others depend on
  // the version, so only the reference is certain.
  if (!fused || s.t % 64 == 0) EXPECT_EQ(ops::qkv_attention_is_fused(qkv0, s.heads), fused);
  if (fused && !ops::qkv_attention_is_fused(qkv0, s.heads)) std::printf("[qkv_attention] T%ld: not fused\n", long(s.t));
  at::Tensor qkv = qkv0.clone().requires_grad_(true);
  const at::Tensor y = ops::qkv_attention(qkv, s.heads, causal);
  EXPECT_EQ(y.sizes(), (std::vector<std::int64_t>{s.b, s.t, s.heads * s.d}));
  EXPECT_EQ(y.scalar_type(), dtype);
  (y.to(at::kFloat) * dy).sum().backward();
  return {y.detach(), qkv.grad()};
}

double max_error(const at::Tensor& x, const at::Tensor& exact) {
  return (x.to(at::kDouble) - exact).abs().max().item<double>();
}

class QkvAttentionGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
    ops::set_attention_backend(ops::AttentionBackend::kCudnn);  // the reference on LibTorch's cuDNN path
  }
  void TearDown() override { ops::set_attention_backend(ops::AttentionBackend::kAuto); }
};

TEST_F(QkvAttentionGpu, AsAccurateAsLibTorchsCudnnPath) {
  const std::vector<Shape> shapes{{2, 128, 4, 64}, {3, 100, 2, 64}, {2, 256, 2, 128}};
  for (const at::ScalarType dtype : {at::kBFloat16, at::kHalf}) {
    const double eps = dtype == at::kBFloat16 ? 0x1p-8 : 0x1p-11;  // half an ulp at 1 is eps / 2
    for (const Shape& s : shapes) {
      for (const bool causal : {true, false}) {
        at::manual_seed(17);
        const auto o = at::TensorOptions().device(at::kCUDA);
        const at::Tensor qkv = at::randn({s.b, s.t, 3 * s.heads * s.d}, o).to(dtype);
        const at::Tensor dy = at::randn({s.b, s.t, s.heads * s.d}, o);
        const Result fused = run(true, dtype, s, causal, qkv, dy), ref = run(false, dtype, s, causal, qkv, dy);

        at::Tensor qkv64 = qkv.to(at::kDouble).requires_grad_(true);
        const at::Tensor y64 = testing::attention_by_definition(qkv64, s.heads, causal);
        (y64 * dy.to(at::kDouble)).sum().backward();
        const at::Tensor g64 = qkv64.grad();

        const double y_scale = y64.abs().max().item<double>(), g_scale = g64.abs().max().item<double>();
        const double y_fused = max_error(fused.y, y64), y_ref = max_error(ref.y, y64);
        const double g_fused = max_error(fused.grad, g64), g_ref = max_error(ref.grad, g64);
        const std::string name = std::string(dtype == at::kBFloat16 ? "bf16" : "fp16") + " B" +
                                 std::to_string(s.b) + " T" + std::to_string(s.t) + " H" + std::to_string(s.heads) +
                                 " d" + std::to_string(s.d) + (causal ? " causal" : "");
        std::printf("[qkv_attention] %s: y %.2f / %.2f ulps (fused / reference, y equal bitwise: %s), "
                    "dqkv %.2f / %.2f ulps\n",
                    name.c_str(), y_fused / (eps * y_scale), y_ref / (eps * y_scale),
                    at::equal(fused.y, ref.y) ? "yes" : "no", g_fused / (eps * g_scale), g_ref / (eps * g_scale));
        EXPECT_LE(y_fused, 1.25 * y_ref + 0.5 * eps * y_scale) << name;
        EXPECT_LE(g_fused, 1.25 * g_ref + 0.5 * eps * g_scale) << name;
      }
    }
  }
}

TEST_F(QkvAttentionGpu, DeterministicAlgorithmRepeatsBitForBit) {
  const bool before = at::globalContext().deterministicAlgorithms();
  const bool warn_only = at::globalContext().deterministicAlgorithmsWarnOnly();
  at::globalContext().setDeterministicAlgorithms(true, /*warn_only=*/true);
  const Shape s{2, 256, 4, 64};
  at::manual_seed(23);
  const auto o = at::TensorOptions().device(at::kCUDA);
  const at::Tensor qkv = at::randn({s.b, s.t, 3 * s.heads * s.d}, o).to(at::kBFloat16);
  const at::Tensor dy = at::randn({s.b, s.t, s.heads * s.d}, o);
  const Result first = run(true, at::kBFloat16, s, true, qkv, dy), second = run(true, at::kBFloat16, s, true, qkv, dy);
  at::globalContext().setDeterministicAlgorithms(before, warn_only);
  EXPECT_TRUE(at::equal(first.grad, second.grad));
}

// GPT-2's shapes (1.5B's 25 heads, 124M's 12, at 1024 tokens): cuDNN builds the graph with the strided outputs,
// so the model takes the fused backward, not the fallback; its result against LibTorch's cuDNN backward.
TEST_F(QkvAttentionGpu, TheBackwardGraphBuildsForGpt2Shapes) {
  for (const Shape& s : {Shape{2, 1024, 25, 64}, Shape{2, 1024, 12, 64}}) {
    at::manual_seed(29);
    const auto o = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
    const std::int64_t c = s.heads * s.d;
    const at::Tensor qkv = at::randn({s.b, s.t, 3 * c}, o);
    auto heads = [&](const at::Tensor& z) { return z.view({s.b, s.t, s.heads, s.d}).transpose(1, 2); };
    const auto parts = qkv.split(c, -1);
    const at::Tensor q = heads(parts[0]), k = heads(parts[1]), v = heads(parts[2]);
    auto fwd = at::_scaled_dot_product_cudnn_attention(q, k, v, std::nullopt, true, 0.0, true, false);
    const at::Tensor& out = std::get<0>(fwd);
    at::Tensor d_o = heads(at::randn({s.b, s.t, c}, o));
    if (d_o.strides() != out.strides()) {  // qkv_attention copies it so too; the model then pays one copy a layer
      std::printf("[qkv_attention] LibTorch's attention output is not token-major here\n");
      d_o = at::empty_like(out).copy_(d_o);
    }

    at::Tensor d_qkv = at::empty_like(qkv);
    const auto d_parts = d_qkv.split(c, -1);
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(s.d)));
    ops::detail::SdpaBackwardArgs args{q, k, v, out, d_o, std::get<1>(fwd), heads(d_parts[0]), heads(d_parts[1]),
                                       heads(d_parts[2]), scale, /*causal=*/true, /*deterministic=*/false};
    std::string why;
    ASSERT_TRUE(ops::detail::cudnn_sdpa_backward(args, why)) << why;

    auto [g_q, g_k, g_v] = at::_scaled_dot_product_cudnn_attention_backward(
        d_o, q, k, v, out, std::get<1>(fwd), std::get<6>(fwd), std::get<7>(fwd), at::Tensor(), at::Tensor(),
        at::Tensor(), s.t, s.t, 0.0, true);
    auto tokens = [&](const at::Tensor& g) { return g.transpose(1, 2).reshape({s.b, s.t, c}); };
    const at::Tensor ref = at::cat({tokens(g_q), tokens(g_k), tokens(g_v)}, -1);
    const double scale_ref = ref.abs().max().item<float>();
    const double diff = (d_qkv.to(at::kFloat) - ref.to(at::kFloat)).abs().max().item<float>();
    std::printf("[qkv_attention] H%ld graph: max |ours - LibTorch| %.3g of max %.3g (bitwise equal: %s)\n",
                static_cast<long>(s.heads), diff, scale_ref, at::equal(d_qkv, ref) ? "yes" : "no");
    EXPECT_LE(diff, 4 * 0x1p-8 * scale_ref);  // a few bf16 ulps of the largest value: dq's atomics order aside
  }
}

}  // namespace
}  // namespace deepspeed
