#pragma once
// Internal, the C++ side of the ops/ kernels (built with DS_WITH_CUDA_OPS only): ATen dtypes as the launchers'
// element types, and a failed launch as a JobError naming the op.
#include <string>

#include <c10/core/ScalarType.h>
#include <cuda_runtime_api.h>

#include "deepspeed/util/error.h"
#include "src/ops/element_type.h"
#include "src/util/value_type_of.h"

namespace deepspeed::ops::detail {

/// bf16 and fp16 as themselves; anything else as fp32 (callers pass only the dtypes their kernels take).
inline ElementType element_type(at::ScalarType t) {
  return util::value_type_of(t).value_or(ElementType::kFloat32);
}

inline void check_launch(cudaError_t err, const char* op) {
  if (err != cudaSuccess) throw JobError(std::string("fused ") + op + " launch failed: " + cudaGetErrorString(err));
}

}  // namespace deepspeed::ops::detail
