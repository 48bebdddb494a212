#pragma once
/// \file
/// GPT-2 in LibTorch, after nanoGPT and llm.c: token + position embeddings, pre-LayerNorm blocks (causal
/// self-attention through deepspeed::ops::qkv_attention — cuDNN's kernels for bf16 on Hopper; with
/// DS_QKV_ATTENTION=0 at::scaled_dot_product_attention — and a GELU(tanh) MLP), a final LayerNorm and an LM
/// head tied to the token embedding. GPT-2's initialisation: N(0, 0.02) weights, zero biases, and the two
/// residual projections of each block scaled by 1/√(2·n_layer).

#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include "deepspeed/zero/unit.h"

#include "examples/gpt2/gpt_config.h"

namespace deepspeed::examples::gpt2 {

class CausalSelfAttentionImpl : public torch::nn::Module {
 public:
  explicit CausalSelfAttentionImpl(const GPTConfig& c);
  /// x: [B, T, d] → [B, T, d].
  at::Tensor forward(const at::Tensor& x);

  torch::nn::Linear c_attn{nullptr}, c_proj{nullptr};

 private:
  std::int64_t n_head_, n_embd_;
  double dropout_;
  bool ops_linear_;
  torch::nn::Dropout resid_dropout_{nullptr};
};
TORCH_MODULE(CausalSelfAttention);

class MlpImpl : public torch::nn::Module {
 public:
  explicit MlpImpl(const GPTConfig& c);
  at::Tensor forward(const at::Tensor& x);

  torch::nn::Linear c_fc{nullptr}, c_proj{nullptr};

 private:
  bool ops_linear_;
  torch::nn::Dropout dropout_{nullptr};
};
TORCH_MODULE(Mlp);

/// A pre-LayerNorm block on a residual stream x whose last branch, `pending` (the previous block's MLP output;
/// undefined for the first block), is not added yet. Returns {h, m}: h = x + pending + attn(ln_1(x + pending)),
/// m = mlp(ln_2(h)), with m left for the next LayerNorm to add (x + pending + ... is the unfused block's
/// stream; each add is fused with the LayerNorm that reads it, deepspeed::ops::add_layer_norm).
class BlockImpl : public torch::nn::Module {
 public:
  explicit BlockImpl(const GPTConfig& c);
  std::vector<at::Tensor> forward(const at::Tensor& x, const at::Tensor& pending);

  torch::nn::LayerNorm ln_1{nullptr}, ln_2{nullptr};
  CausalSelfAttention attn{nullptr};
  Mlp mlp{nullptr};
};
TORCH_MODULE(Block);

class GPTImpl : public torch::nn::Module {
 public:
  /// Builds and initialises the model on the CPU from the current LibTorch seed. Throws UsageError for
  /// shapes that do not fit (n_embd not divisible by n_head, non-positive sizes).
  explicit GPTImpl(GPTConfig c);

  /// idx: int64 token ids [B, T] with T ≤ block_size → logits [B, T, vocab_size] in the model's dtype.
  /// With config().activation_checkpointing each block is recomputed in backward (in training mode with
  /// grad enabled; evaluation runs plainly).
  at::Tensor forward(const at::Tensor& idx);

  /// The blocks and ln_f on the embedded tokens [B, T, C] → ln_f's output [B, T, C] (forward() applies the
  /// LM head to it). The last block's MLP output is added in ln_f's fused pass.
  at::Tensor trunk(const at::Tensor& embedded);

  const GPTConfig& config() const { return config_; }

  torch::nn::Embedding wte{nullptr}, wpe{nullptr};
  torch::nn::ModuleList h{nullptr};  ///< the blocks, registered as h.0, h.1, ... (GPT-2's names)
  std::vector<Block> blocks;          ///< the same blocks, typed
  std::vector<zero::Unit> units;      ///< one ZeRO-3 unit per block (plain calls without ZeRO-3)
  torch::nn::LayerNorm ln_f{nullptr};

 private:
  GPTConfig config_;
  torch::nn::Dropout drop_{nullptr};
};
TORCH_MODULE(GPT);

/// Mean next-token cross-entropy of logits [B, T, V] against targets [B, T], computed in float32 whatever
/// the logits' dtype (as autocast does for nanoGPT), so bf16 logits do not round the loss. On CUDA it is
/// deepspeed::ops::cross_entropy's fused kernel (DS_REFERENCE_CROSS_ENTROPY=1: the upcast reference).
at::Tensor lm_loss(const at::Tensor& logits, const at::Tensor& targets);

}  // namespace deepspeed::examples::gpt2
