#pragma once
// Internal: freeing and re-allocating a tensor's storage in place, keeping every view of it valid (ZeRO-3
// releases gathered parameters this way; tensors autograd saved from them see the data again once re-gathered).
#include <cstdint>

#include <ATen/core/Tensor.h>

namespace deepspeed::zero {

void resize_storage(const at::Tensor& tensor, std::int64_t nbytes);

}  // namespace deepspeed::zero
