// Activation checkpointing on a GPU: the CUDA generator is replayed (dropout, SDPA's fused dropout), saved
// inputs offloaded to pinned host memory come back, and a bf16 GPT-2 gives the plain model's gradients.
// Skipped without CUDA.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/utils.h>

#include "deepspeed/engine/activation_checkpointing.h"
#include "deepspeed/ops/qkv_attention.h"
#include "examples/gpt2/model.h"

namespace ckpt = deepspeed::checkpointing;
namespace gpt2 = deepspeed::examples::gpt2;

namespace {

class CheckpointingGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
    ckpt::reset();
  }
  void TearDown() override { ckpt::reset(); }
};

TEST_F(CheckpointingGpu, DropoutReplayedAndCpuOffload) {
  const c10::Device dev(c10::kCUDA, 0);
  torch::manual_seed(0);
  torch::nn::Linear fc(64, 256), proj(256, 64);
  torch::nn::Dropout drop(0.3);
  fc->to(dev);
  proj->to(dev);
  auto block = [fc = fc.ptr(), proj = proj.ptr(), drop = drop.ptr()](const at::Tensor& x) {
    return x + proj->forward(drop->forward(at::gelu(fc->forward(x), "tanh")));
  };
  const at::Tensor x0 = at::randn({8, 64}, at::TensorOptions().device(dev));
  auto grads = [&](bool checkpointed) {
    fc->zero_grad();
    proj->zero_grad();
    at::Tensor x = x0.clone().requires_grad_(true);
    torch::manual_seed(5);
    at::Tensor y = checkpointed ? ckpt::checkpoint(block, ckpt::checkpoint(block, x)) : block(block(x));
    (void)at::rand({7}, at::TensorOptions().device(dev));  // moves the CUDA generator on
    y.pow(2).sum().backward();
    return std::vector<at::Tensor>{x.grad().clone(), fc->weight.grad().clone(), proj->weight.grad().clone()};
  };
  const auto plain = grads(false);
  for (bool offload : {false, true}) {
    deepspeed::config::ActivationCheckpointingConfig settings;
    settings.cpu_checkpointing = offload;
    ckpt::configure(settings);
    const auto ckpted = grads(true);
    for (std::size_t i = 0; i < plain.size(); ++i) {
      EXPECT_TRUE(at::allclose(plain[i], ckpted[i], 1e-5, 1e-6)) << "gradient " << i << " offload " << offload;
    }
  }
}

// Attention dropout 0.1 runs SDPA (ops::qkv_attention falls back to its reference); dropout 0 runs the fused
// cuDNN path, whose backward writes c_attn's gradient whole: both must survive recomputation.
const gpt2::GPTConfig kSmallGpt2{.vocab_size = 512, .block_size = 128, .n_layer = 3, .n_head = 4, .n_embd = 256};
constexpr std::int64_t kBatch = 4;

void expect_checkpointing_keeps_gpt2_gradients(double dropout) {
  const c10::Device dev(c10::kCUDA, 0);
  auto base = kSmallGpt2;
  base.dropout = dropout;
  const auto tokens = at::TensorOptions().dtype(at::kLong).device(dev);
  const at::Tensor idx = at::randint(base.vocab_size, {kBatch, base.block_size}, tokens);
  const at::Tensor targets = at::randint(base.vocab_size, {kBatch, base.block_size}, tokens);
  auto grads = [&](bool checkpointing) {
    auto c = base;
    c.activation_checkpointing = checkpointing;
    torch::manual_seed(3);
    gpt2::GPT model(c);
    model->to(dev, at::kBFloat16);
    torch::manual_seed(4);
    gpt2::lm_loss(model(idx), targets).backward();
    std::vector<at::Tensor> out;
    for (const auto& p : model->parameters()) out.push_back(p.grad().to(at::kFloat));
    return out;
  };
  const auto plain = grads(false);
  const auto ckpted = grads(true);
  ASSERT_EQ(plain.size(), ckpted.size());
  for (std::size_t i = 0; i < plain.size(); ++i) {
    // Same masks and inputs; only the order of bf16 accumulations may differ between kernel launches.
    const double scale = plain[i].abs().max().item<double>() + 1e-12;
    EXPECT_LT((plain[i] - ckpted[i]).abs().max().item<double>() / scale, 2e-2) << "parameter " << i;
  }
}

TEST_F(CheckpointingGpu, Bf16Gpt2WithAttentionDropout) { expect_checkpointing_keeps_gpt2_gradients(0.1); }

TEST_F(CheckpointingGpu, Bf16Gpt2FusedQkvAttention) {
  // c_attn's output at this model's shape: where the fused path does not take it, this case would only repeat
  // the SDPA one, so it says so instead of passing.
  const at::Tensor qkv = at::empty({kBatch, kSmallGpt2.block_size, 3 * kSmallGpt2.n_embd},
                                   at::TensorOptions().dtype(at::kBFloat16).device(at::kCUDA));
  if (!deepspeed::ops::qkv_attention_is_fused(qkv, kSmallGpt2.n_head, /*dropout=*/0.0)) {
    GTEST_SKIP() << "ops::qkv_attention's fused path does not take this card or build";
  }
  expect_checkpointing_keeps_gpt2_gradients(0.0);
}

}  // namespace
