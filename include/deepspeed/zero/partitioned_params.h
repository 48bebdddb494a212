#pragma once
/// \file
/// ZeRO stage 3: parameters partitioned across ranks, gathered per unit on use.
///
/// Each unit's parameters are laid out in FlatGroups sharded across the data-parallel ranks; a rank keeps its
/// shard (param_shard) and nothing else. Gathering a unit re-allocates the storage of its flat buffer and
/// all-gathers the shards into it; the parameters (and any tensors autograd saved from them, which share that
/// storage) see the full values again. Releasing frees the storage and points the parameters at empty tensors
/// (numel 0, as DeepSpeed shows them). Backward re-gathers a unit when the gradient of its output arrives and
/// releases it once all its parameters' gradients are in. The next unit (in the order the first forward ran
/// them) is prefetched while the current one computes, within stage3_max_live_parameters.
///
/// With PartitionOptions::offload (offload_param), the shards are host tensors: gathering a unit first copies
/// each of its chunks to the device (asynchronously from pinned memory, on the current stream, ahead of the
/// all-gather that reads it); whoever writes a shard on the host (the CPU optimizer) must not do so while a
/// gather of that unit is in flight.
///
/// Collective contract: every rank runs the same units in the same order (the usual SPMD rule; units gather
/// with all-gathers). Calls come from the training thread, and from autograd's thread for the backward hooks.

#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include <ATen/core/Tensor.h>

#include "deepspeed/comm/communicator.h"
#include "deepspeed/zero/flat_group.h"
#include "deepspeed/zero/unit.h"

namespace deepspeed::zero {

struct PartitionOptions {
  std::int64_t bucket_numel = 500000000;
  std::int64_t max_live_parameters = 1000000000;  ///< stage3_max_live_parameters: prefetch budget (elements)
  std::int64_t persistence_threshold = 100000;    ///< stage3_param_persistence_threshold: smaller units stay whole
  /// stage3_max_reuse_distance: a unit whose next use (its backward) is at most this many parameter elements
  /// of other units away stays gathered after its forward, within max_live_parameters.
  std::int64_t max_reuse_distance = 1000000000;
  /// stage3_prefetch_bucket_size: while a unit runs, the units after it (before it, in backward) are gathered
  /// ahead until their elements reach this many (at least one unit); 0 = no prefetch.
  std::int64_t prefetch_numel = 50000000;
  /// offload_param: each rank's 16-bit shard lives in host memory (page-locked when `pin_memory` and the
  /// device is a GPU) and is copied to the device just before its all-gather; the device holds only the
  /// units gathered at the moment.
  bool offload = false;
  bool pin_memory = false;
};

class PartitionedParams : public UnitRuntime {
 public:
  /// `units[u][g]`: the trainable parameters of unit u in optimizer group g. Unit 0 is the root unit (parameters
  /// in no declared unit); it stays gathered. Values must already agree across ranks. Frees the full copies.
  PartitionedParams(const std::vector<std::vector<std::vector<at::Tensor>>>& units,
                    std::shared_ptr<comm::Communicator> comm, PartitionOptions options);
  ~PartitionedParams() override;

  /// FlatGroups in the order backward produces their gradients (later units first).
  std::vector<FlatGroup*> groups();

  // UnitRuntime
  void before_forward(std::size_t unit) override;
  void after_forward(std::size_t unit, std::vector<at::Tensor>& outputs) override;

  /// Brackets a forward: gathers the root unit.
  void begin_forward();
  /// Brackets a backward: while active, units are released by their gradients, not by their forward.
  void begin_backward();
  /// After the reduction: releases whatever backward left gathered.
  void end_backward();
  /// Called when every parameter of `unit` has its gradient (from the reducer's hooks).
  void on_unit_gradients_done(std::size_t unit);
  /// The shards changed (optimizer step, checkpoint load): drop the full copies (the next use re-gathers) and
  /// refresh the persistent units. Collective.
  void invalidate();

  /// Gathers (waits) / releases a unit explicitly; used by GatheredParameters and checkpoints. Collective.
  /// release() leaves persistent units (the root, units under the persistence threshold) whole.
  void gather(std::size_t unit);
  void release(std::size_t unit);
  /// The unit holding `param`, if any.
  std::optional<std::size_t> unit_of(const at::Tensor& param) const;
  std::size_t num_units() const { return units_.size(); }
  /// All-gathers started so far (each gathers one unit); for tests and tuning.
  std::int64_t gathers() const { return gathers_; }
  /// Elements of the units gathered (or being gathered) now.
  std::int64_t live_numel() const { return live_numel_; }
  /// Copies the (gathered) full parameters of `unit` into this rank's shards (after an edit).
  void update_shards_from_full(std::size_t unit);
  /// Bytes of host memory the shards hold (offload_param; 0 otherwise).
  std::int64_t host_bytes() const;

 private:
  struct UnitState;
  void start_gather_locked(std::size_t unit);
  void finish_gather_locked(std::size_t unit);
  void release_locked(std::size_t unit);
  void prefetch_locked(std::size_t unit);  // within max_live_parameters
  /// Prefetches the units that follow position `from` of the recorded order in direction `step` (+1 forward,
  /// -1 backward), up to options_.prefetch_numel elements.
  void prefetch_window_locked(std::ptrdiff_t from, std::ptrdiff_t step);
  /// Elements of other units used between unit's forward and its backward (recorded order; nullopt before).
  std::optional<std::int64_t> reuse_distance(std::size_t unit) const;

  std::shared_ptr<comm::Communicator> comm_;
  PartitionOptions options_;
  std::vector<std::unique_ptr<UnitState>> units_;
  std::vector<std::unique_ptr<FlatGroup>> groups_;
  std::recursive_mutex mutex_;
  std::vector<std::size_t> order_;  // forward order recorded on the first pass
  bool order_recorded_ = false;
  bool backward_active_ = false;
  std::int64_t live_numel_ = 0;
  std::int64_t gathers_ = 0;
};

}  // namespace deepspeed::zero
