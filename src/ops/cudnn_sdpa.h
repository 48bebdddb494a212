#pragma once
// cuDNN's fused attention backward through cuDNN's graph API, for outputs at strides of the caller's choosing
// (LibTorch's cuDNN backward allocates its own). Built where the build found cuDNN's frontend headers
// (DS_WITH_CUDNN_FRONTEND); the cuDNN library is the one LibTorch loaded, found in the process at run time.

#include <string>

#include <ATen/core/Tensor.h>

namespace deepspeed::ops::detail {

/// True when this build has cuDNN's frontend and the process has LibTorch's cuDNN library loaded.
bool cudnn_sdpa_available();

/// What the backward needs: q, k, v, o and d_o [B, H, T, D] (any strides, innermost 1; d_o at o's strides),
/// stats LibTorch's forward logsumexp ([B, H, T] or [B, H, T, 1], fp32), and the outputs d_q, d_k, d_v, views at
/// any strides (innermost 1), written in place. bf16 or fp16, one CUDA device.
struct SdpaBackwardArgs {
  at::Tensor q, k, v, o, d_o, stats;
  at::Tensor d_q, d_k, d_v;
  float scale = 1.0f;
  bool causal = false;
  bool deterministic = false;
};

/// Runs the backward on the current stream (the caller holds a guard for the tensors' device) and returns true.
/// Returns false with `why` set when cuDNN cannot build or run a graph for these shapes and strides — the outputs
/// may then be partly written, so the caller computes them another way — and at once for the same shapes later.
/// Graphs are cached per thread (cuDNN's plans are not safe to share between threads), keyed by every shape,
/// stride, dtype, the scale and the flags.
bool cudnn_sdpa_backward(const SdpaBackwardArgs& args, std::string& why);

}  // namespace deepspeed::ops::detail
