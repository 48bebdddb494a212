#pragma once
// The element types the ops/ kernels take, named without CUDA or ATen headers (the launchers' interface): the
// one enum of every kernel of ours (src/util/value_type.h).
#include "src/util/value_type.h"

namespace deepspeed::ops::detail {

using ElementType = ::deepspeed::util::ValueType;

}  // namespace deepspeed::ops::detail
