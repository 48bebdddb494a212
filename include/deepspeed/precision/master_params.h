#pragma once
/// \file
/// The weights the optimizer updates and how they reach the model.
///
///   stage 0, fp32 model    the model's own parameters (no copy)
///   stage 0, 16-bit model  an fp32 copy of every parameter (flat), written back into the model after each step
///   stages 1–2             an fp32 copy of this rank's shard only; after the step each rank writes its chunk of
///                          every bucket into the model's flat parameters and the buckets are all-gathered
///   stage 3                an fp32 copy of this rank's shard; after the step it is written into the 16-bit
///                          parameter shard, and gathered copies are dropped (the next use re-gathers)
///
/// Gradients follow the same shapes: attach_gradients() points the optimizer tensors' .grad() at fp32 views of
/// the reducer's output, or at fp32 copies when the reducer accumulated in 16 bits.

#include <memory>
#include <vector>

#include <ATen/core/Tensor.h>

#include "deepspeed/comm/communicator.h"
#include "deepspeed/zero/flat_group.h"
#include "deepspeed/zero/partitioned_params.h"

namespace deepspeed::precision {

class MasterParams {
 public:
  /// `stage` 0–3; `groups` (and `partitioned`, for stage 3) must outlive this object. Construction is local.
  MasterParams(std::vector<zero::FlatGroup*> groups, int stage, std::shared_ptr<comm::Communicator> comm,
               zero::PartitionedParams* partitioned = nullptr);

  /// Per optimizer param group: the tensors the optimizer updates.
  std::vector<std::vector<at::Tensor>> optimizer_params(std::size_t num_optimizer_groups) const;

  /// Gives every optimizer tensor its fp32 gradient from `reduced` (one tensor per FlatGroup, as
  /// GradientReducer::gradients() returns; per-parameter gradients when the model's own parameters are
  /// optimized and no flat gradients exist). Returns the fp32 gradient tensors (for norms and scaling).
  std::vector<at::Tensor> attach_gradients(const std::vector<at::Tensor>& reduced);

  /// Drops the optimizer tensors' gradients (transient fp32 copies would otherwise live until the next step).
  void release_gradients();

  /// Makes the model's parameters equal the updated masters. Collective for stages 1–2 (all-gather).
  void write_back();

  /// True when the optimizer works on copies (16-bit model, or any sharded stage).
  bool has_copies() const { return copies_; }
  int stage() const { return stage_; }

  /// Per FlatGroup: the fp32 master ([total_numel] for stage 0, this rank's [shard_numel] for stages 1–2);
  /// empty when the optimizer works on the model's parameters. For checkpoints; writing them changes training.
  std::vector<at::Tensor>& masters() { return master_; }
  /// Stages 1–2: per FlatGroup, (optimizer group, position in it) of its shard tensor.
  std::vector<std::pair<std::size_t, std::size_t>> shard_slots() const;
  /// Sets the masters from the model's current weights (after loading weights without optimizer state).
  void refresh_from_model();

 private:
  std::vector<zero::FlatGroup*> groups_;
  int stage_;
  std::shared_ptr<comm::Communicator> comm_;
  zero::PartitionedParams* partitioned_ = nullptr;
  bool copies_ = false;
  std::vector<at::Tensor> master_;                   // per group: [total] (stage 0) or [shard] (stages 1–2)
  std::vector<std::vector<at::Tensor>> master_views_;  // stage 0: per group, per parameter views
};

}  // namespace deepspeed::precision
