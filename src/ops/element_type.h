#pragma once
// The element types the ops/ kernels take, named without CUDA or ATen headers (the launchers' interface).

namespace deepspeed::ops::detail {

enum class ElementType { kFloat32, kFloat16, kBFloat16 };

}  // namespace deepspeed::ops::detail
