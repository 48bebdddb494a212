#pragma once
// Internal, the C++ side of our CUDA kernels' launchers: an ATen dtype as the kernels' element type.
#include <optional>

#include <c10/core/ScalarType.h>

#include "src/util/value_type.h"

namespace deepspeed::util {

/// fp32, fp16 and bf16 as themselves; nullopt for any other dtype (no kernel takes it).
inline std::optional<ValueType> value_type_of(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return ValueType::kFloat32;
    case at::kHalf: return ValueType::kFloat16;
    case at::kBFloat16: return ValueType::kBFloat16;
    default: return std::nullopt;
  }
}

}  // namespace deepspeed::util
