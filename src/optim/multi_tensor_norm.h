#pragma once
// Internal to the optimizers' clipping (clip.cpp): the gradient norm's sum of squares over a list of CUDA
// tensors in one kernel pass (multi_tensor_norm_kernel.cu).
#include <optional>
#include <vector>

#include <ATen/core/Tensor.h>

namespace deepspeed::optim::detail {

/// True unless DS_REFERENCE_GRAD_NORM=1 (read at every call): squared_l2_norm_tensor then takes the one-pass
/// kernel for CUDA tensors; with it, and as the reference the kernel is tested against, LibTorch's _foreach_norm.
bool multi_tensor_norm_enabled();

/// Σx² over `tensors` as a 0-d fp64 tensor on their device, enqueued on the current stream; nullopt (nothing
/// enqueued) where the kernel does not take them: a build without it, tensors not all contiguous fp32/bf16/fp16
/// on one CUDA device, or none.
std::optional<at::Tensor> multi_tensor_squared_sum(const std::vector<at::Tensor>& tensors);

}  // namespace deepspeed::optim::detail
