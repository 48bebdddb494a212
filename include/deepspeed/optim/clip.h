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
/// Sum of squares, for callers that combine across shards before taking the root. Host tensors are summed
/// on at most `threads` OpenMP threads (0: omp_get_max_threads() of the calling thread); the result does
/// not depend on it.
double squared_l2_norm(const std::vector<at::Tensor>& tensors, int threads = 0);

/// ‖t‖² of one CUDA tensor (fp32/bf16/fp16, contiguous), summed in exactly the order squared_l2_norm() sums a
/// host tensor, so it is bit-identical to squared_l2_norm({t.cpu()}). Enqueued on the current CUDA stream;
/// returns a 0-d fp64 tensor on t's device (read it after that stream's work). ZeRO-Offload takes each host
/// chunk's share of the gradient norm this way from the device buffer it lands from. Throws unless
/// device_squared_sum_available().
at::Tensor device_squared_sum(const at::Tensor& t);
/// Whether this build has device_squared_sum's CUDA kernel.
bool device_squared_sum_available();

/// Scales the tensors by min(1, max_norm / (total_norm + 1e-6)), as DeepSpeed does. Returns the coefficient.
double clip_by_norm(const std::vector<at::Tensor>& tensors, double max_norm, double total_norm);

}  // namespace deepspeed::optim
