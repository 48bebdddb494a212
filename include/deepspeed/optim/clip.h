#pragma once
/// \file
/// Global gradient norm and clipping (DeepSpeed's runtime/utils.py clip_grad_norm_).

#include <vector>

#include <ATen/core/Tensor.h>

namespace deepspeed::optim {

/// L2 norm over all tensors taken together: device tensors accumulated in fp32, host tensors in fp32 runs of
/// 1024 summed in fp64 (deterministic for any thread count). Tensors may be on several devices (offload).
/// Local: callers that hold only a shard combine the squared norms across ranks themselves.
double l2_norm(const std::vector<at::Tensor>& tensors);
/// Sum of squares, for callers that combine across shards before taking the root.
double squared_l2_norm(const std::vector<at::Tensor>& tensors);

/// Scales the tensors by min(1, max_norm / (total_norm + 1e-6)), as DeepSpeed does. Returns the coefficient.
double clip_by_norm(const std::vector<at::Tensor>& tensors, double max_norm, double total_norm);

}  // namespace deepspeed::optim
