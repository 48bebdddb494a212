#pragma once
/// \file
/// Where ZeRO keeps each kind of state it owns. The layouts (strategy.h) allocate their fp32 master weights
/// and gradient shards through a Placement and never ask where a tensor lives: moving state to the host
/// (ZeRO-Offload) is a different Placement, not a branch in every layout.
///
/// Optimizer state has no entry of its own: the optimizer creates its state beside the tensors it updates
/// (the master weights) and load_state_dict moves saved state to them, so placing the masters places it.
/// Model weights, full gradient buffers and communication buffers always live on the compute device.
///
/// Allocation is local (no collective); a Placement is a value, cheap to copy.

#include <cstdint>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

namespace deepspeed::zero {

enum class StateKind {
  kMasterWeights,   ///< fp32 copies the optimizer updates (and, with them, the optimizer state)
  kGradientShards,  ///< this rank's reduced gradients at stages 1–3
};

class Placement {
 public:
  /// Everything on `device` (the rank's GPU, or the CPU under Gloo): what every layout uses today.
  static Placement on_device(c10::Device device);

  c10::Device device(StateKind kind) const;

  /// A new tensor for `kind`: uninitialised / zero-filled / a copy of `source` converted to `dtype`.
  at::Tensor empty(StateKind kind, std::int64_t numel, at::ScalarType dtype) const;
  at::Tensor zeros(StateKind kind, std::int64_t numel, at::ScalarType dtype) const;
  at::Tensor copy_of(StateKind kind, const at::Tensor& source, at::ScalarType dtype) const;

 private:
  explicit Placement(c10::Device master, c10::Device gradients) : master_(master), gradients_(gradients) {}
  c10::Device master_;
  c10::Device gradients_;
};

}  // namespace deepspeed::zero
