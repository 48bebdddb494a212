#pragma once
/// \file
/// GPT-2 shapes and their arithmetic: presets, parameter counts, FLOPs per token and model FLOPs utilisation.
/// Pure (no LibTorch), so the numbers are testable on their own.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace deepspeed::examples::gpt2 {

/// Dense bf16 tensor-core peak of one H100 SXM (989 TFLOP/s), the denominator of the MFU we report.
inline constexpr double kH100Bf16PeakFlops = 989e12;

struct GPTConfig {
  /// GPT-2's 50257 tokens padded to a multiple of 128, as nanoGPT and llm.c do: the LM-head matmul gets
  /// tensor-core-friendly shapes, and the 47 extra rows are never targets.
  std::int64_t vocab_size = 50304;
  std::int64_t block_size = 1024;  ///< longest sequence (rows of the position embedding)
  std::int64_t n_layer = 12;
  std::int64_t n_head = 12;
  std::int64_t n_embd = 768;
  double dropout = 0.0;             ///< embedding, attention and residual dropout (training only)
  bool activation_checkpointing = false;  ///< recompute each block in backward (deepspeed::checkpointing)
  /// The linear layers through deepspeed::ops::linear instead of at::linear: the biased projections (c_attn,
  /// both c_proj) and, on CUDA with its timed GEMMs (the default unless DS_GEMM_TUNED=0), c_fc's GEMM and the LM
  /// head too, the bias gradients in the weight GEMMs' epilogue. The example's --linear turns it on by default
  /// (+1.2-1.8 % a step on an H200, docs/kernels.md); off here so a model built in code is plain at::linear.
  bool ops_linear = false;
};

/// The GPT-2 family by size ("124M", "350M", "774M", "1.5B") or by Hugging Face name ("gpt2",
/// "gpt2-medium", "gpt2-large", "gpt2-xl"); two larger GPT-style shapes for ZeRO-Offload, "3.8B" (32 × 3072)
/// and "10B" (50 × 4096); or "tiny", a CPU-sized model for smoke runs and tests; nullopt for anything else.
inline std::optional<GPTConfig> preset(std::string_view name) {
  GPTConfig c;
  if (name == "124M" || name == "gpt2") {
    c.n_layer = 12, c.n_head = 12, c.n_embd = 768;
  } else if (name == "350M" || name == "gpt2-medium") {
    c.n_layer = 24, c.n_head = 16, c.n_embd = 1024;
  } else if (name == "774M" || name == "gpt2-large") {
    c.n_layer = 36, c.n_head = 20, c.n_embd = 1280;
  } else if (name == "1.5B" || name == "gpt2-xl") {
    c.n_layer = 48, c.n_head = 25, c.n_embd = 1600;
  } else if (name == "3.8B") {
    c.n_layer = 32, c.n_head = 24, c.n_embd = 3072;
  } else if (name == "10B") {
    c.n_layer = 50, c.n_head = 32, c.n_embd = 4096;
  } else if (name == "tiny") {
    c.block_size = 64, c.n_layer = 2, c.n_head = 2, c.n_embd = 64;
  } else {
    return std::nullopt;
  }
  return c;
}

inline std::vector<std::string> preset_names() {
  return {"124M", "350M", "774M", "1.5B", "gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "3.8B", "10B"};
}

/// Parameters of one block: two LayerNorms (2d each), QKV (3d² + 3d), attention projection (d² + d),
/// MLP up (4d² + 4d) and down (4d² + d).
constexpr std::int64_t block_parameters(std::int64_t d) { return 12 * d * d + 13 * d; }

/// Parameters of the model as built: token embedding (shared with the LM head, counted once), position
/// embedding (only with `include_position_embedding`), blocks and the final LayerNorm. 124M: 124,475,904
/// with the position embedding, 123,689,472 without.
constexpr std::int64_t num_parameters(const GPTConfig& c, bool include_position_embedding = true) {
  const std::int64_t d = c.n_embd;
  return c.vocab_size * d + (include_position_embedding ? c.block_size * d : 0) + c.n_layer * block_parameters(d) +
         2 * d;
}

/// Training FLOPs per token at sequence length `seq_len`, nanoGPT's estimate (PaLM appendix B):
/// 6N + 12·L·d·T, where N = all parameters except the position embedding (a lookup, no matmul; the tied
/// token embedding stays in, since it is the LM head's matmul). 6N: forward and backward of every weight
/// matmul (2 + 4 FLOPs per parameter per token); 12·L·d·T: the attention scores and their weighted sum
/// (QKᵀ and AV, 2·2·d·T per layer forward, ×3 with backward). Causal masking is not discounted, as in
/// nanoGPT and llm.c, and recomputation under activation checkpointing is not counted (model FLOPs, not
/// hardware FLOPs).
constexpr double flops_per_token(const GPTConfig& c, std::int64_t seq_len) {
  const double n = static_cast<double>(num_parameters(c, /*include_position_embedding=*/false));
  return 6.0 * n + 12.0 * static_cast<double>(c.n_layer) * static_cast<double>(c.n_embd) * static_cast<double>(seq_len);
}

/// Model FLOPs utilisation: achieved model FLOP/s over the peak of `num_gpus` devices. `tokens_per_second`
/// is the global rate (all ranks together).
constexpr double mfu(double flops_per_token, double tokens_per_second, int num_gpus,
                     double peak_flops_per_gpu = kH100Bf16PeakFlops) {
  return flops_per_token * tokens_per_second / (peak_flops_per_gpu * static_cast<double>(num_gpus));
}

}  // namespace deepspeed::examples::gpt2
