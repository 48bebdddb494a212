#pragma once
// Torch-free launcher of the fused cross-entropy kernel (cross_entropy_kernel.cu), so nvcc never parses ATen.

#include <cstdint>

#include <cuda_runtime_api.h>

#include "src/ops/element_type.h"

namespace deepspeed::ops::detail {

using LogitType = ElementType;

/// Per row r of logits [rows, vocab]: loss_rows[r] = logsumexp(x_r) − x_r[targets[r]] (NaN when the target is
/// out of range), lse_rows[r] = logsumexp(x_r), and grad[r, j] = (softmax(x_r)_j − [j == targets[r]]) · scale,
/// in the logits' type. `logits` and `grad` may not alias. Asynchronous on `stream`; returns the launch error.
cudaError_t launch_cross_entropy_forward(LogitType type, const void* logits, const std::int64_t* targets,
                                         float* loss_rows, float* lse_rows, void* grad, std::int64_t rows,
                                         std::int64_t vocab, float scale, cudaStream_t stream);

/// True when launch_cross_entropy_forward takes the staged kernel for these logits on the current device:
/// DS_CROSS_ENTROPY_STAGED=1, rows in aligned 16-byte packs, and the device grants a row's bytes of shared
/// memory (a freshly allocated gradient buffer assumed aligned).
bool cross_entropy_forward_is_staged(LogitType type, const void* logits, std::int64_t vocab);

/// Completes the gradient for an incoming gradient *grad_output (fp32, device memory): a no-op when it is 1,
/// otherwise grad is recomputed from logits and the forward's lse_rows with scale · *grad_output. Same
/// stream order as the forward; asynchronous; returns the launch error.
cudaError_t launch_cross_entropy_backward(LogitType type, const void* logits, const std::int64_t* targets,
                                          const float* lse_rows, void* grad, std::int64_t rows, std::int64_t vocab,
                                          float scale, const float* grad_output, cudaStream_t stream);

}  // namespace deepspeed::ops::detail
