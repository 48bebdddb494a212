#pragma once
/// \file
/// What `zero_optimization`, the precision sections and `data_types` ask of the ZeRO layout, decided in one
/// place: make_strategy() builds from it and the memory estimate (memory_estimate.h) counts from it.

#include <cstdint>

#include <c10/core/ScalarType.h>

#include "deepspeed/config/config.h"

namespace deepspeed::zero {

struct LayoutChoice {
  int stage = 0;
  /// reduce_bucket_size; at stage 0 at most 2^23 elements: stage 0 overlaps its all-reduce with backward
  /// (DeepSpeed's does not), and a bucket of DeepSpeed's 5e8 default would leave nothing to overlap.
  std::int64_t bucket_numel = 0;
  at::ScalarType model_dtype = at::kFloat;          ///< fp16, bf16 (their sections enabled) or fp32
  at::ScalarType accum_dtype = at::kFloat;          ///< data_types.grad_accum_dtype or DeepSpeed's default
  at::ScalarType communication_dtype = at::kFloat;  ///< communication_data_type, else accum_dtype
  double offload_ratio = 0.0;                       ///< fraction of every shard on the host; 0: no offload
  bool pin_memory = false;                          ///< offload_optimizer.pin_memory
  /// Offload at stages 2-3 with gradient accumulation: the micro-steps of a window are summed in a device
  /// buffer (2Ψ/N in accum dtype) and only the boundary's sum crosses to the host, instead of every micro-step
  /// landing on the host and being added there by the CPU (which lagged backward). Off without accumulation,
  /// with offload_param (whose point is to keep Ψ/N-sized state off the device), or with
  /// DS_OFFLOAD_GRAD_ACCUMULATION=host; DS_OFFLOAD_GRAD_ACCUMULATION=device forces it on.
  bool accumulate_on_device = false;
  bool offload_params = false;  ///< offload_param.device "cpu" (stage 3): the 16-bit weight shards on the host
  bool pin_params = false;      ///< offload_param.pin_memory
};

/// Throws ConfigError for a grad_accum_dtype an fp32 model cannot use.
LayoutChoice choose_layout(const config::Config& config);

/// The dtype the model's weights train in (choose_layout(config).model_dtype, without the checks).
at::ScalarType model_dtype(const config::Config& config);

}  // namespace deepspeed::zero
