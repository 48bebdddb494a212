#include "examples/gpt2/model.h"

#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include <ATen/ops/arange.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/scaled_dot_product_attention.h>
#include <torch/nn/init.h>

#include "deepspeed/engine/activation_checkpointing.h"
#include "deepspeed/ops/add_layer_norm.h"
#include "deepspeed/ops/bias_gelu.h"
#include "deepspeed/ops/cross_entropy.h"
#include "deepspeed/ops/gelu_mlp.h"
#include "deepspeed/ops/linear.h"
#include "deepspeed/ops/linear_chunks.h"
#include "deepspeed/ops/qkv_attention.h"
#include "deepspeed/util/error.h"

namespace deepspeed::examples::gpt2 {
namespace {

constexpr double kInitStd = 0.02;

torch::nn::Linear linear(std::int64_t in, std::int64_t out, double std) {
  torch::nn::Linear l(in, out);
  at::NoGradGuard no_grad;
  torch::nn::init::normal_(l->weight, 0.0, std);
  torch::nn::init::zeros_(l->bias);
  return l;
}

torch::nn::LayerNorm layer_norm(std::int64_t d) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({d}).eps(1e-5));
}

// LibTorch's C++ torch::nn::Linear (torch::nn::functional::linear) adds the bias to a 3-D input as a separate
// broadcast `+=`, a strided kernel that re-reads and re-writes every activation: 8 ms of an 80 ms GPT-2 124M step
// on an H100 (docs/benchmarks.md). ATen's at::linear, which PyTorch's nn.Linear calls, flattens a contiguous
// input to one addmm with the bias in the GEMM's epilogue. Same parameters, same module tree.
// GPTConfig::ops_linear: deepspeed::ops::linear instead: on CUDA its GEMMs on timed cuBLASLt algorithms with the
// bias gradient in the weight GEMM's epilogue (the example's default, docs/kernels.md), and its switches.
at::Tensor dense(const torch::nn::Linear& l, const at::Tensor& x, bool ops_linear) {
  return ops_linear ? ops::linear(x, l->weight, l->bias) : at::linear(x, l->weight, l->bias);
}

// The GEMMs without a bias (c_fc, whose bias bias_gelu adds, and the LM head): ops::linear is at::linear for
// them unless its GEMMs are timed (on CUDA, the default).
at::Tensor dense(const at::Tensor& weight, const at::Tensor& x, bool ops_linear) {
  return ops_linear ? ops::linear(x, weight, at::Tensor()) : at::linear(x, weight);
}

// GPT-2 scales the weights of the projections that write into the residual stream, so its variance does not
// grow with depth: 2 such writes per block.
double residual_std(const GPTConfig& c) { return kInitStd / std::sqrt(2.0 * static_cast<double>(c.n_layer)); }

}  // namespace

CausalSelfAttentionImpl::CausalSelfAttentionImpl(const GPTConfig& c)
    : n_head_(c.n_head), n_embd_(c.n_embd), dropout_(c.dropout), ops_linear_(c.ops_linear) {
  c_attn = register_module("c_attn", linear(c.n_embd, 3 * c.n_embd, kInitStd));
  c_proj = register_module("c_proj", linear(c.n_embd, c.n_embd, residual_std(c)));
  resid_dropout_ = register_module("resid_dropout", torch::nn::Dropout(c.dropout));
}

// By default c_attn runs as a plain linear layer followed by ops::qkv_attention, whose backward writes q's, k's
// and v's gradients straight into c_attn's output gradient (no joining pass; the bias gradient comes from the
// weight GEMM): +0.5 % a 1.5B step on an H100 over three calls, the same losses (docs/kernels.md).
// DS_QKV_ATTENTION=0: c_attn as ops::linear_chunks (on CUDA; the reference, the split of at::linear's output,
// elsewhere or with DS_REFERENCE_LINEAR_CHUNKS=1), whose backward puts the three gradients back together with the
// bias gradient in one pass, and SDPA on the split heads.
at::Tensor CausalSelfAttentionImpl::forward(const at::Tensor& x) {
  const double attention_dropout = is_training() ? dropout_ : 0.0;
  if (ops::qkv_attention_requested()) {
    const at::Tensor y = ops::qkv_attention(dense(c_attn, x, ops_linear_), n_head_, /*causal=*/true, attention_dropout);
    return resid_dropout_(dense(c_proj, y, ops_linear_));
  }
  const std::int64_t b = x.size(0), t = x.size(1), hd = n_embd_ / n_head_;
  const auto qkv = ops::linear_chunks_is_fused(x, c_attn->weight, c_attn->bias, 3)
                       ? ops::linear_chunks(x, c_attn->weight, c_attn->bias, 3)
                       : dense(c_attn, x, ops_linear_).split(n_embd_, 2);
  auto heads = [&](const at::Tensor& z) { return z.view({b, t, n_head_, hd}).transpose(1, 2); };  // [B, H, T, hd]
  at::Tensor y = at::scaled_dot_product_attention(heads(qkv[0]), heads(qkv[1]), heads(qkv[2]), /*attn_mask=*/{},
                                                  attention_dropout, /*is_causal=*/true);
  y = y.transpose(1, 2).contiguous().view({b, t, n_embd_});
  return resid_dropout_(dense(c_proj, y, ops_linear_));
}

MlpImpl::MlpImpl(const GPTConfig& c) : ops_linear_(c.ops_linear) {
  c_fc = register_module("c_fc", linear(c.n_embd, 4 * c.n_embd, kInitStd));
  c_proj = register_module("c_proj", linear(4 * c.n_embd, c.n_embd, residual_std(c)));
  dropout_ = register_module("dropout", torch::nn::Dropout(c.dropout));
}

// c_fc's GEMM runs without its bias; deepspeed::ops::bias_gelu adds it and applies GELU in one pass, and in
// backward sums the bias gradient while it writes GELU's input gradient (fused on CUDA; the reference
// elsewhere or with DS_REFERENCE_BIAS_GELU=1).
// DS_MLP_EPILOGUE=1 (bf16/fp16 on CUDA): the whole MLP as ops::gelu_mlp, bias and GELU in the GEMMs' epilogues
// (off: 4-8 % slower a step on an H200, docs/kernels.md).
at::Tensor MlpImpl::forward(const at::Tensor& x) {
  if (ops::gelu_mlp_is_fused(x, c_fc->weight, c_fc->bias, c_proj->weight, c_proj->bias)) {
    return dropout_(ops::gelu_mlp(x, c_fc->weight, c_fc->bias, c_proj->weight, c_proj->bias));
  }
  return dropout_(dense(c_proj, ops::bias_gelu(dense(c_fc->weight, x, ops_linear_), c_fc->bias), ops_linear_));
}

BlockImpl::BlockImpl(const GPTConfig& c) {
  ln_1 = register_module("ln_1", layer_norm(c.n_embd));
  attn = register_module("attn", CausalSelfAttention(c));
  ln_2 = register_module("ln_2", layer_norm(c.n_embd));
  mlp = register_module("mlp", Mlp(c));
}

// The residual adds are fused into the LayerNorms that read their sums (deepspeed::ops::add_layer_norm: fused on
// CUDA, ATen's LayerNorm elsewhere or with DS_REFERENCE_ADD_LAYER_NORM=1): the previous block's MLP output
// (`pending`) joins the stream in ln_1's pass, the attention output in ln_2's. The MLP output is returned
// unadded, for the next block's ln_1 (or ln_f) to add. The LayerNorms keep their parameters and names.
std::vector<at::Tensor> BlockImpl::forward(const at::Tensor& x, const at::Tensor& pending) {
  at::Tensor residual = x, a;
  if (pending.defined()) {
    std::tie(residual, a) = ops::add_layer_norm(x, pending, ln_1->weight, ln_1->bias, ln_1->options.eps());
  } else {
    a = ln_1(x);
  }
  auto [h, z] = ops::add_layer_norm(residual, attn(a), ln_2->weight, ln_2->bias, ln_2->options.eps());
  return {h, mlp(z)};
}

GPTImpl::GPTImpl(GPTConfig c) : config_(c) {
  if (c.vocab_size <= 0 || c.block_size <= 0 || c.n_layer <= 0 || c.n_head <= 0 || c.n_embd <= 0) {
    throw UsageError("gpt2: vocab, block_size, n_layer, n_head and n_embd must be positive");
  }
  if (c.n_embd % c.n_head != 0) {
    throw UsageError("gpt2: n_embd " + std::to_string(c.n_embd) + " is not divisible by n_head " +
                     std::to_string(c.n_head));
  }
  if (c.dropout < 0 || c.dropout >= 1) throw UsageError("gpt2: dropout must be in [0, 1)");
  wte = register_module("wte", torch::nn::Embedding(c.vocab_size, c.n_embd));
  wpe = register_module("wpe", torch::nn::Embedding(c.block_size, c.n_embd));
  {
    at::NoGradGuard no_grad;
    torch::nn::init::normal_(wte->weight, 0.0, kInitStd);
    torch::nn::init::normal_(wpe->weight, 0.0, kInitStd);
  }
  drop_ = register_module("drop", torch::nn::Dropout(c.dropout));
  h = register_module("h", torch::nn::ModuleList());
  for (std::int64_t i = 0; i < c.n_layer; ++i) {
    blocks.emplace_back(c);
    h->push_back(blocks.back());
    units.emplace_back(blocks.back());
  }
  ln_f = register_module("ln_f", layer_norm(c.n_embd));
}

at::Tensor GPTImpl::forward(const at::Tensor& idx) {
  if (idx.dim() != 2) throw UsageError("gpt2: expected token ids [batch, time], got " + std::to_string(idx.dim()) + " dims");
  const std::int64_t t = idx.size(1);
  if (t > config_.block_size) {
    throw UsageError("gpt2: sequence of " + std::to_string(t) + " tokens exceeds block_size " +
                     std::to_string(config_.block_size));
  }
  const at::Tensor pos = at::arange(t, idx.options().dtype(at::kLong));
  // The LM head is the token embedding, transposed: both uses accumulate into one gradient.
  return dense(wte->weight, trunk(drop_(wte(idx) + wpe(pos))), config_.ops_linear);
}

at::Tensor GPTImpl::trunk(const at::Tensor& embedded) {
  at::Tensor x = embedded, pending;
  for (auto& unit : units) {
    if (config_.activation_checkpointing && is_training()) {
      // A checkpoint saves its inputs until backward: one tensor per block, so the MLP output is added
      // inside (unfused) rather than carried out as a second saved input.
      x = checkpointing::checkpoint(
          [u = unit](const at::Tensor& in) mutable {
            auto out = u.operator()<std::vector<at::Tensor>>(in, at::Tensor());
            return out[0] + out[1];
          },
          x);
    } else {
      auto out = unit.operator()<std::vector<at::Tensor>>(x, pending);
      x = out[0];
      pending = out[1];
    }
  }
  if (!pending.defined()) return ln_f(x);
  return ops::add_layer_norm(x, pending, ln_f->weight, ln_f->bias, ln_f->options.eps()).second;
}

at::Tensor lm_loss(const at::Tensor& logits, const at::Tensor& targets) {
  return ops::cross_entropy(logits.flatten(0, 1), targets.flatten());
}

}  // namespace deepspeed::examples::gpt2
