#include "deepspeed/zero/activation_estimate.h"

namespace deepspeed::zero {

namespace {

// What one block keeps for its backward, in units of E: the residual input, LayerNorm 1's output, QKV (3, which
// SDPA's saved q, k, v view), the attention output and its contiguous copy (the projection's input), the
// residual sum, LayerNorm 2's output, the MLP's 4h pre-activation and its GELU (4 + 4), and the MLP's output.
constexpr std::int64_t kSavedPerBlock = 18;
// While a block's backward runs: the gradients of its widest tensors (the 4h ones: the GELU output's and its
// input's). An allowance from the block's structure, not separately measured.
constexpr std::int64_t kBlockGradients = 8;

}  // namespace

std::int64_t TransformerShape::block_parameters() const { return 12 * hidden * hidden + 13 * hidden; }

std::int64_t TransformerShape::parameters() const {
  return layers * block_parameters() + vocab * hidden + seq * hidden + 2 * hidden;
}

ActivationEstimate estimate_activations(const TransformerShape& shape) {
  const std::int64_t e = shape.micro_batch * shape.seq * shape.hidden * shape.element_bytes;
  const std::int64_t logits = shape.micro_batch * shape.seq * shape.vocab * shape.element_bytes;
  ActivationEstimate a;
  a.saved = shape.layers * (shape.checkpointing ? 1 : kSavedPerBlock) * e;
  a.head = 2 * logits + 2 * e;
  a.block = ((shape.checkpointing ? kSavedPerBlock : 0) + kBlockGradients) * e;
  return a;
}

}  // namespace deepspeed::zero
