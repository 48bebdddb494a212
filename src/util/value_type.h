#pragma once
// The element types our CUDA kernels take, named without CUDA or ATen headers, so a launcher's interface can be
// compiled by nvcc without ATen and by the C++ side without CUDA: one enum for the ops/, optim/ and zero/
// kernels (value_type_of.h maps ATen's dtypes onto it).
#include <cstdint>

namespace deepspeed::util {

enum class ValueType : std::int32_t { kFloat32, kFloat16, kBFloat16 };

}  // namespace deepspeed::util
