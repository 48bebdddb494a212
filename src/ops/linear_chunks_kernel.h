#pragma once
// Torch-free launcher of ops::linear_chunks' backward kernel (linear_chunks_kernel.cu), so nvcc never parses ATen.

#include <cstdint>

#include <cuda_runtime_api.h>

#include "src/ops/element_type.h"

namespace deepspeed::ops::detail {

/// The most chunks one linear_chunks layer may have (the kernel takes their pointers as arguments).
inline constexpr int kMaxLinearChunks = 8;

/// The chunks' gradients grads[0 … chunks−1], each [rows, width] (contiguous, `type`), copied side by side into
/// dy [rows, chunks·width] — autograd's cat of a split — while the same pass sums dy's columns: dbias =
/// Σ_rows dy, in fp32 in the order of launch_bias_grad's (bias_gelu_kernel.h: the same partial rows, `parts`
/// from bias_gelu_backward_parts(rows, chunks·width), the same fold), rounded once to `param_type`. So dbias is
/// bit for bit launch_bias_grad's of the assembled dy. `workspace` holds parts × chunks·width floats.
/// Asynchronous on `stream`; returns the launch error (cudaErrorInvalidValue for chunks outside
/// 1 … kMaxLinearChunks or a type pair the kernels do not take).
cudaError_t launch_linear_chunks_backward(ElementType type, ElementType param_type, const void* const* grads,
                                          int chunks, std::int64_t rows, std::int64_t width, void* dy, void* dbias,
                                          float* workspace, std::int64_t parts, cudaStream_t stream);

}  // namespace deepspeed::ops::detail
