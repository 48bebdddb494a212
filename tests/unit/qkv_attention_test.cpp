// ops::qkv_attention off the GPU (its reference path, which the GPU test holds the fused path to): attention over
// a packed QKV tensor against attention written out in float64 — softmax(q·kᵀ/√d + mask)·v per head — with the
// gradient of qkv, causal and not; the switches read at each call; UsageErrors for bad arguments.
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "deepspeed/ops/qkv_attention.h"
#include "deepspeed/util/error.h"
#include "tests/support/attention_by_definition.h"
#include "tests/support/scoped_env.h"

namespace deepspeed {
namespace {

TEST(QkvAttention, OnTheCpuIsAttentionByDefinitionWithItsGradient) {
  for (const bool causal : {true, false}) {
    torch::manual_seed(5);
    const at::Tensor qkv0 = torch::randn({2, 7, 3 * 12});
    const at::Tensor dy = torch::randn({2, 7, 12});
    EXPECT_FALSE(ops::qkv_attention_is_fused(qkv0, 3));

    at::Tensor qkv = qkv0.clone().requires_grad_(true);
    const at::Tensor y = ops::qkv_attention(qkv, 3, causal);
    ASSERT_EQ(y.sizes(), (std::vector<std::int64_t>{2, 7, 12}));
    EXPECT_TRUE(y.is_contiguous());
    (y * dy).sum().backward();

    at::Tensor qkv64 = qkv0.to(at::kDouble).requires_grad_(true);
    const at::Tensor y64 = testing::attention_by_definition(qkv64, 3, causal);
    (y64 * dy.to(at::kDouble)).sum().backward();
    // fp32 against float64: a few ulps of values of order one.
    EXPECT_LT((y.to(at::kDouble) - y64).abs().max().item<double>(), 1e-5) << "causal " << causal;
    EXPECT_LT((qkv.grad().to(at::kDouble) - qkv64.grad()).abs().max().item<double>(), 1e-5) << "causal " << causal;
  }
}

TEST(QkvAttention, CausalMeansTheFirstTokenSeesOnlyItself) {
  torch::manual_seed(6);
  const at::Tensor qkv = torch::randn({1, 4, 3 * 8});
  const at::Tensor y = ops::qkv_attention(qkv, 2, /*causal=*/true);
  // Token 0 attends to token 0 alone: its output is its own v.
  EXPECT_TRUE(torch::allclose(y[0][0], qkv[0][0].narrow(0, 16, 8), 1e-6, 1e-6));
}

TEST(QkvAttention, SwitchesAreReadAtEachCall) {
  {  // on by default; only the value 0 turns it off
    const testing::ScopedEnv unset("DS_QKV_ATTENTION", nullptr);
    EXPECT_TRUE(ops::qkv_attention_requested());
  }
  {
    const testing::ScopedEnv off("DS_QKV_ATTENTION", "0");
    EXPECT_FALSE(ops::qkv_attention_requested());
  }
  {
    const testing::ScopedEnv other("DS_QKV_ATTENTION", "no");
    EXPECT_TRUE(ops::qkv_attention_requested());
  }
  {
    const testing::ScopedEnv forced("DS_REFERENCE_QKV_ATTENTION", "1");
    EXPECT_TRUE(ops::qkv_attention_reference_forced());
  }
  {
    const testing::ScopedEnv unset("DS_REFERENCE_QKV_ATTENTION", nullptr);
    EXPECT_FALSE(ops::qkv_attention_reference_forced());
  }
}

TEST(QkvAttention, BadShapesAreUsageErrors) {
  EXPECT_THROW(ops::qkv_attention(torch::randn({7, 36}), 3, true), UsageError);
  EXPECT_THROW(ops::qkv_attention(at::Tensor(), 3, true), UsageError);
  try {
    ops::qkv_attention(torch::randn({2, 7, 35}), 3, true);
    FAIL() << "no error";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("3 · heads · head_dim for heads = 3"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ops::qkv_attention(torch::randn({2, 7, 36}), 0, true), UsageError);
  EXPECT_FALSE(ops::qkv_attention_is_fused(torch::randn({2, 7, 35}), 3));
}

}  // namespace
}  // namespace deepspeed
