#pragma once
// Internal to ops::linear and ops::linear_chunks: the shape checks both make before any path is chosen.
#include <string>

#include <ATen/core/Tensor.h>

#include "deepspeed/util/error.h"

namespace deepspeed::ops::detail {

/// Throws UsageError, naming `op`, unless x is [*, in], weight [out, in] and bias (where defined) [out].
inline void check_linear_arguments(const char* op, const at::Tensor& x, const at::Tensor& weight,
                                   const at::Tensor& bias) {
  const std::string what = std::string("deepspeed::ops::") + op + ": ";
  if (!x.defined() || !weight.defined()) throw UsageError(what + "x and weight must be defined");
  if (x.dim() < 1 || weight.dim() != 2 || weight.size(1) != x.size(-1)) {
    throw UsageError(what + "x must be [*, in] and weight [out, in]");
  }
  if (bias.defined() && (bias.dim() != 1 || bias.size(0) != weight.size(0))) {
    throw UsageError(what + "bias must be [out]");
  }
}

}  // namespace deepspeed::ops::detail
