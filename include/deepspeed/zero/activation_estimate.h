#pragma once
/// \file
/// What a GPT-style decoder's activations add to the device's memory per micro-batch, beside the model states of
/// memory_estimate.h (deepspeed_estimate --transformer). Pure arithmetic for the shape DeepSpeed's users train
/// most: pre-LayerNorm blocks (attention through SDPA/flash, so no s×s score matrix is kept; a 4h MLP with GELU),
/// a language-model head tied to the embedding, and a loss whose kernel writes the logits' gradient in forward
/// (deepspeed::ops::cross_entropy). Counted in elements of E = micro_batch × seq × hidden, times the
/// activations' element size.
///
/// Checked on one H200 (docs/benchmarks.md, issue #12): the forward peak above the model states was 3.13 GiB for
/// 32 × 3072 at micro-batch 8 (this estimate: 3.13) and 5.91 GiB for 50 × 4096 at stage 3 (this: 4.79; the
/// other 1.12 GiB about three units' weights that ZeRO-3 held gathered).

#include <cstdint>

namespace deepspeed::zero {

struct TransformerShape {
  std::int64_t layers = 0;
  std::int64_t hidden = 0;
  std::int64_t seq = 0;
  std::int64_t micro_batch = 0;
  std::int64_t vocab = 0;
  bool checkpointing = false;      ///< each block's input kept, the block recomputed in backward
  std::int64_t element_bytes = 2;  ///< bf16/fp16 activations; 4 for fp32 training

  /// Trainable parameters: per block 12h² + 13h (QKV, projection, MLP, their biases, two LayerNorms), the tied
  /// token embedding V·h, the position embedding seq·h and the final LayerNorm 2h.
  std::int64_t parameters() const;
  /// One block's parameters (what ZeRO-3 gathers at a time).
  std::int64_t block_parameters() const;
};

struct ActivationEstimate {
  std::int64_t saved = 0;  ///< kept from forward to backward: each block's input (checkpointing) or all of every block's
  std::int64_t head = 0;   ///< at the turn to backward: the logits, their gradient, the final LayerNorm's input and output
  std::int64_t block = 0;  ///< checkpointing: one block recomputed with its gradients, while its backward runs
  /// Above the model states at the end of forward (the peak of forward: everything saved plus the head).
  std::int64_t forward_peak() const { return saved + head; }
  /// The most backward holds at once apart from the gradient buffers of the layout: at its start, the saved
  /// activations and the head; later, what is left of them and one recomputed block.
  std::int64_t backward_peak() const { return forward_peak() > saved + block ? forward_peak() : saved + block; }
};

ActivationEstimate estimate_activations(const TransformerShape& shape);

}  // namespace deepspeed::zero
