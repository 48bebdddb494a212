#pragma once
// Internal to ds_optim: the Adam pieces FusedAdam and DeepSpeedCPUAdam (for the masters a partial offload
// leaves on the device) share.
#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

#include "deepspeed/optim/cpu_adam.h"
#include "deepspeed/optim/optimizer.h"

namespace deepspeed::optim {

/// Creates "step", "exp_avg", "exp_avg_sq" (and "max_exp_avg_sq") beside `p` if absent.
void init_adam_state(ParamState& s, const at::Tensor& p, bool amsgrad);

/// Elements of 16-bit gradients up-cast at once (256 MiB of fp32): the step's transient memory stays one
/// slice instead of 4 bytes per element of the whole device share (12.5 GiB at 10B with a third on the GPU).
inline constexpr std::int64_t kUpcastSliceNumel = std::int64_t{64} << 20;

/// One Adam/AdamW step of `params` (each with its grad() defined) through LibTorch's fused multi-tensor
/// kernels, one launch per (device, dtype); the per-tensor reference when bias_correction is off. Gradients are
/// multiplied by `grad_scale` first: in place when their dtype is the parameter's; a 16-bit gradient beside
/// an fp32 parameter is up-cast (and scaled) a bounded slice at a time, each slice's launch before the next.
/// `copies` (parallel to params, undefined or absent where there is none): 16-bit tensors that receive each
/// updated parameter, in the same kernel on the device path, by a copy after the step otherwise.
/// On CUDA, fp32 parameters with bias correction and without amsgrad take deepspeed.cpp's one-pass kernel
/// (device_adam_step) unless DS_REFERENCE_ADAM=1; everything else LibTorch's fused kernels as described.
/// `device_scale` (a 0-d tensor), when defined, is the gradient factor in place of `grad_scale`: the kernel
/// reads it on the device; the other paths read it on the host once (waiting for it).
void fused_adam_step(const std::vector<at::Tensor>& params, const std::vector<ParamState*>& states, const Hyper& h,
                     double grad_scale = 1.0, std::int64_t upcast_slice = kUpcastSliceNumel,
                     const std::vector<at::Tensor>& copies = {}, const at::Tensor& device_scale = {});

/// One Adam/AdamW step of fp32 CUDA `params` by adam_master_kernel.cu: each gradient (fp32 or 16-bit, any
/// mix) read once and multiplied by `grad_scale`, the moments and the master updated, and the result stored
/// in copies[i] (16-bit or fp32, when defined) in the same pass. Step counts must already be advanced.
/// `device_scale`, when given, points at the factor as an fp32 value on the parameters' device, read there in
/// place of `grad_scale` (it must stay alive until the step has run on the current stream).
/// Returns false, having done nothing, when the build has no kernel, DS_REFERENCE_ADAM=1, the hyperparameters
/// ask for amsgrad or no bias correction, or a tensor is not what the kernel takes (not contiguous, another
/// device or dtype); the caller then takes LibTorch's path.
bool device_adam_step(const std::vector<at::Tensor>& params, const std::vector<at::Tensor>& grads,
                      const std::vector<ParamState*>& states, const std::vector<at::Tensor>& copies, const Hyper& h,
                      double grad_scale, const float* device_scale = nullptr);
bool device_adam_available();
/// DS_REFERENCE_ADAM=1 (read at every step): LibTorch's fused kernels and separate scaling and copy passes.
bool reference_adam_requested();

/// The kernel's element type of `t` (fp32 only when `allow_fp32`); throws std::invalid_argument naming `what`
/// and the dtype otherwise.
ElemType elem_type_of(const at::Tensor& t, const char* what, bool allow_fp32);

}  // namespace deepspeed::optim
