#include "deepspeed/zero/placement.h"

#include <ATen/ATen.h>

namespace deepspeed::zero {

Placement Placement::on_device(c10::Device device) { return Placement(device, device); }

c10::Device Placement::device(StateKind kind) const {
  return kind == StateKind::kMasterWeights ? master_ : gradients_;
}

at::Tensor Placement::empty(StateKind kind, std::int64_t numel, at::ScalarType dtype) const {
  return at::empty({numel}, at::TensorOptions().device(device(kind)).dtype(dtype));
}

at::Tensor Placement::zeros(StateKind kind, std::int64_t numel, at::ScalarType dtype) const {
  return at::zeros({numel}, at::TensorOptions().device(device(kind)).dtype(dtype));
}

at::Tensor Placement::copy_of(StateKind kind, const at::Tensor& source, at::ScalarType dtype) const {
  return source.to(device(kind), dtype, /*non_blocking=*/false, /*copy=*/true);
}

}  // namespace deepspeed::zero
