#pragma once
// Torch-free launchers of the fused bias + GELU kernels (bias_gelu_kernel.cu), so nvcc never parses ATen.

#include <cstdint>

#include <cuda_runtime_api.h>

#include "src/ops/element_type.h"

namespace deepspeed::ops::detail {

/// Per element of x [rows, columns] (contiguous, `type`): h = round(x + bias[column]) in `type`, computed in
/// fp32, and y = round(GELU_tanh(h)) with GELU_tanh(h) = h/2 · (1 + tanh(√(2/π)·(h + 0.044715·h³))), computed
/// for 16-bit types as h·σ(2u) (the same function; a result may round to the adjacent value) unless
/// DS_BIAS_GELU_TANHF=1, for fp32 exactly as ATen does. bias
/// [columns] is `param_type`: `type` or kFloat32. y may alias x. Asynchronous on `stream`; returns the launch
/// error.
cudaError_t launch_bias_gelu_forward(ElementType type, ElementType param_type, const void* x, const void* bias,
                                     void* y, std::int64_t rows, std::int64_t columns, cudaStream_t stream);

/// Rows of the fp32 workspace launch_bias_gelu_backward needs ([parts, columns]: one partial bias-gradient row
/// per slice of the rows, sized to fill the current device once).
std::int64_t bias_gelu_backward_parts(std::int64_t rows, std::int64_t columns);

/// With h recomputed as in the forward: dx = round(dy · GELU_tanh'(h)) in `type` (dx may alias dy), and
/// dbias = Σ_rows dx, summed in fp32 in an order fixed by (rows, columns, device), rounded once to
/// `param_type`. `workspace` holds parts × columns floats, parts from bias_gelu_backward_parts. Asynchronous on
/// `stream`; returns the launch error.
cudaError_t launch_bias_gelu_backward(ElementType type, ElementType param_type, const void* dy, const void* x,
                                      const void* bias, void* dx, void* dbias, float* workspace, std::int64_t parts,
                                      std::int64_t rows, std::int64_t columns, cudaStream_t stream);

/// A linear layer's bias gradient: dbias = Σ_rows dy for dy [rows, columns] (contiguous, `type`), summed in fp32
/// in the same order as launch_bias_gelu_backward's, rounded once to `param_type`; dy is read once. Workspace
/// and parts as there. Asynchronous on `stream`; returns the launch error.
cudaError_t launch_bias_grad(ElementType type, ElementType param_type, const void* dy, void* dbias, float* workspace,
                             std::int64_t parts, std::int64_t rows, std::int64_t columns, cudaStream_t stream);

/// The last pass of the two above, for other kernels of ops/ that write the same partial rows (linear_chunks'):
/// dbias[c] = Σ_p workspace[p, c] over p = 0 … parts − 1 in that order (zeros when parts = 0), rounded once to
/// `param_type`. Asynchronous on `stream`; returns the launch error.
cudaError_t launch_bias_fold(ElementType param_type, const float* workspace, std::int64_t parts, std::int64_t columns,
                             void* dbias, cudaStream_t stream);

}  // namespace deepspeed::ops::detail
