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
/// The same sum left where the tensors are: a 0-d fp64 tensor on their device, enqueued on the current stream
/// (device tensors) or computed now (host tensors), so a caller can go on without waiting for the gradients.
/// Every tensor on one device (throws std::invalid_argument otherwise); `.item()` of it is squared_l2_norm().
at::Tensor squared_l2_norm_tensor(const std::vector<at::Tensor>& tensors, int threads = 0);

/// ‖t‖² of one CUDA tensor (fp32/bf16/fp16, contiguous), summed in exactly the order squared_l2_norm() sums a
/// host tensor, so it is bit-identical to squared_l2_norm({t.cpu()}). Enqueued on the current CUDA stream;
/// returns a 0-d fp64 tensor on t's device (read it after that stream's work). ZeRO-Offload takes each host
/// chunk's share of the gradient norm this way from the device buffer it lands from. Throws unless
/// device_squared_sum_available().
at::Tensor device_squared_sum(const at::Tensor& t);
/// Whether this build has device_squared_sum's CUDA kernel.
bool device_squared_sum_available();

/// The engine's gradient factor from a squared norm where it lies: `(1 / loss_scale) · min(1, max_norm /
/// (‖g‖ + 1e-6))` with ‖g‖ = √squared / loss_scale, in fp64 (the host arithmetic, operation for operation, so
/// the result equals it bit for bit), returned as a 0-d fp64 tensor beside `squared`. `max_norm` ≤ 0: no
/// clipping. A NaN norm gives the factor 1 as the host's std::min does (the step then shows the NaN).
at::Tensor gradient_factor(const at::Tensor& squared, double max_norm, double loss_scale = 1.0);

/// Scales the tensors by min(1, max_norm / (total_norm + 1e-6)), as DeepSpeed does. Returns the coefficient.
double clip_by_norm(const std::vector<at::Tensor>& tensors, double max_norm, double total_norm);

}  // namespace deepspeed::optim
