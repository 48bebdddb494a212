#pragma once
/// \file
/// The fp32 tensors an optimizer updates when it does not update the model's own parameters: one ShardBuffer
/// per FlatGroup, either the whole group (replicated 16-bit training) or this rank's shard of it (ZeRO stages
/// 1–3), each in one or two pieces (device, host) as the Placement decided. Which values they start from and
/// how updated values reach the model is the layout's business (strategy.h); this class holds them, shows
/// them to the optimizer, and hands them their fp32 gradients each step.
///
/// Local: no method communicates.

#include <cstddef>
#include <vector>

#include <ATen/core/Tensor.h>

#include "deepspeed/zero/flat_group.h"
#include "deepspeed/zero/placement.h"

namespace deepspeed::zero {

class MasterWeights {
 public:
  /// How the optimizer sees the masters.
  enum class View {
    kPerParameter,  ///< one view per parameter (a replicated layout: its state dict then has PyTorch's shape)
    kPerGroup,      ///< one tensor per piece of each group (a shard has no parameter boundaries)
  };

  /// `masters[g]` is the fp32 master of `groups[g]`. kPerParameter needs one piece per group. The groups
  /// must outlive this object.
  MasterWeights(std::vector<FlatGroup*> groups, std::vector<ShardBuffer> masters, View view);

  /// Per FlatGroup, the fp32 master. Writing into it changes training (checkpoint loads do).
  const std::vector<ShardBuffer>& buffers() const { return masters_; }
  const std::vector<FlatGroup*>& groups() const { return groups_; }

  /// Per optimizer param group (`num_optimizer_groups` of them): the tensors the optimizer updates.
  std::vector<std::vector<at::Tensor>> optimizer_params(std::size_t num_optimizer_groups) const;
  /// kPerGroup: per FlatGroup, per piece, the index of that tensor among all optimizer tensors, counted
  /// across the optimizer's param groups in order (the keys of the optimizer's state dict).
  std::vector<std::vector<std::size_t>> optimizer_indices() const;
  /// kPerGroup: per FlatGroup, per piece, the position of that tensor in its optimizer param group's list
  /// (what the optimizer's (group, index) addressing takes).
  std::vector<std::vector<std::size_t>> optimizer_positions() const;

  /// Which 16-bit gradients the optimizer takes as they are (it up-casts them itself); the others get an fp32
  /// copy beside their master.
  struct SixteenBitGradients {
    bool host_16bit = false;    ///< host pieces' (DeepSpeedCPUAdam up-casts as it reads them)
    bool device_16bit = false;  ///< the other pieces' (optim::Optimizer::upcasts_gradients)
  };
  /// Gives every optimizer tensor its gradient from `reduced` (per FlatGroup, pieced like the master): the
  /// reduced buffer itself when it is fp32 or `taken` says so and it lies beside its master, else an fp32 copy
  /// there. Returns the gradients (for the norm).
  std::vector<at::Tensor> attach_gradients(const std::vector<ShardBuffer>& reduced, SixteenBitGradients taken);
  /// The same from one gradient per parameter (kPerParameter only): `per_parameter[g][i]` for parameter i of
  /// group g, as GradientReducer::gradients_as_they_are() gives them. Returns them (for the norm).
  std::vector<at::Tensor> attach_parameter_gradients(const std::vector<std::vector<at::Tensor>>& per_parameter,
                                                     SixteenBitGradients taken);
  /// Drops the gradients attach_gradients() gave (transient fp32 copies would otherwise live to the next step).
  void release_gradients();

 private:
  std::vector<FlatGroup*> groups_;
  std::vector<ShardBuffer> masters_;
  View view_;
  std::vector<std::vector<at::Tensor>> views_;  // kPerParameter: per group, per parameter
};

}  // namespace deepspeed::zero
