#pragma once
// Internal to ds_optim: the Adam pieces FusedAdam and DeepSpeedCPUAdam (for the masters a partial offload
// leaves on the device) share.
#include <vector>

#include <ATen/core/Tensor.h>

#include "deepspeed/optim/cpu_adam.h"
#include "deepspeed/optim/optimizer.h"

namespace deepspeed::optim {

/// Creates "step", "exp_avg", "exp_avg_sq" (and "max_exp_avg_sq") beside `p` if absent.
void init_adam_state(ParamState& s, const at::Tensor& p, bool amsgrad);

/// One Adam/AdamW step of `params` (each with its grad() defined) through LibTorch's fused multi-tensor
/// kernels, one launch per (device, dtype); the per-tensor reference when bias_correction is off.
void fused_adam_step(const std::vector<at::Tensor>& params, const std::vector<ParamState*>& states, const Hyper& h);

/// The kernel's element type of `t` (fp32 only when `allow_fp32`); throws std::invalid_argument naming `what`
/// and the dtype otherwise.
ElemType elem_type_of(const at::Tensor& t, const char* what, bool allow_fp32);

}  // namespace deepspeed::optim
