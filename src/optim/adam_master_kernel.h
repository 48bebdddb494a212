#pragma once
// Torch-free launcher of the device Adam/AdamW step over fp32 master weights (adam_master_kernel.cu), so nvcc
// never parses ATen. adam_device.cpp builds the tensor table from ATen tensors.
#include <cstdint>

#include <cuda_runtime_api.h>

#include "src/util/value_type.h"

namespace deepspeed::optim::detail {

/// Element types of the gradients and of the 16-bit model copies (one of each per launch).
using AdamValueType = ::deepspeed::util::ValueType;

/// Elements one block updates: a tensor of n elements takes ceil(n / kAdamChunk) blocks.
constexpr std::int64_t kAdamChunk = 16384;

/// One tensor of a launch. `first_chunk`: the running sum of the chunks of the tensors before it (the table is
/// searched by it). `copy` may be null (no model copy for this tensor). `step`: the tensor's step count on the
/// device, already advanced for this step (torch.optim's layout: a 0-d fp32 tensor).
struct AdamTensorArgs {
  float* param;
  const void* grad;
  float* exp_avg;
  float* exp_avg_sq;
  void* copy;
  const float* step;
  std::int64_t numel;
  std::int64_t first_chunk;
  std::int32_t vector;  ///< 1 when every pointer allows 16-byte fp32 / 8-byte 16-bit accesses
  std::int32_t pad;
};

struct AdamLaunchHyper {
  double lr, beta1, beta2, eps, weight_decay;
  float grad_scale;  ///< multiplies each gradient as it is read (the engine's unscale × clipping factor)
  const float* grad_scale_on_device;  ///< when set, grad_scale is read from here (computed on the device)
  bool adam_w_mode;
};

/// Updates every tensor of `tensors` (a device array of `count` entries; total_chunks = the last entry's
/// first_chunk + its chunks) on `stream`: torch.optim's fused Adam/AdamW arithmetic (fp32, the bias
/// corrections from each tensor's step count), the gradient read in `grad_type` and multiplied by grad_scale,
/// and, where `copy` is set, the updated weight rounded to `copy_type` and stored there in the same pass.
/// Asynchronous; returns the launch error.
cudaError_t launch_adam_master_step(AdamValueType grad_type, AdamValueType copy_type, const AdamTensorArgs* tensors,
                                    int count, std::int64_t total_chunks, const AdamLaunchHyper& hyper,
                                    cudaStream_t stream);

}  // namespace deepspeed::optim::detail
