#pragma once
// Internal: the step's new weights written back behind the next forward (stages 1–2 under
// `offload_optimizer.super_offload`, for models that declare ZeRO-3 units).
//
// With gradient clipping the host update cannot start before the global norm is known, after backward, and it
// is the longest part of an offloaded step (3.8B on one H200: ~0.9 s of CPU Adam beside ~0.45 s of forward and
// backward). Without this, step() waits for every bucket's update and upload, and the next forward starts
// only then. With it, step() waits only for the buckets of the root unit (parameters outside every unit, which
// the model may use anywhere in its forward) and returns; each unit's forward then waits for the buckets that
// hold its parameters, in the order the forward reaches them, so the forward runs beside the rest of the host
// update instead of after it. The host updates are queued in that same order.
//
// Every rank writes back the same buckets in the same sequence (the sequence is fixed at start-up, and a
// prefix of it is all any call asks for), so the all-gathers of a multi-rank run pair up.

#include <cstddef>
#include <functional>
#include <vector>

#include "deepspeed/zero/unit.h"

namespace deepspeed::zero {

/// A bucket of one flat group.
struct BucketId {
  std::size_t group = 0, bucket = 0;
  bool operator==(const BucketId& o) const { return group == o.group && bucket == o.bucket; }
};

/// In which order the buckets are written back, and how much of that order each unit's forward needs.
struct WriteBackOrder {
  std::vector<BucketId> sequence;        ///< every bucket once
  std::vector<std::size_t> unit_prefix;  ///< per unit id (0: the root): the length of the sequence's prefix that
                                         ///< holds all its parameters
};

/// Pure arithmetic. `bucket_units[i]`: the unit ids (0 = root, 1..num_units) of the parameters in bucket
/// `buckets[i]`. The root's buckets come first, then each unit's (in id order, which is construction order,
/// the order a model runs its blocks in), then any bucket that holds no parameter of either.
WriteBackOrder plan_write_back(const std::vector<BucketId>& buckets,
                               const std::vector<std::vector<std::size_t>>& bucket_units, std::size_t num_units);

/// The bookkeeping of one step's deferred write-back; bound to the units as their UnitRuntime. Runs on the
/// training thread only (a unit's forward, the engine's calls), so it needs no lock.
class ForwardWriteBack final : public UnitRuntime {
 public:
  /// `write(i)` writes back bucket `order.sequence[i]` (waiting for its host update first); `finished()` runs
  /// once the whole sequence is written in a step.
  ForwardWriteBack(WriteBackOrder order, std::function<void(std::size_t)> write, std::function<void()> finished);

  const WriteBackOrder& order() const { return order_; }
  /// A step's updates are queued: writes the root's prefix now, the rest as units ask.
  void arm();
  /// Writes back whatever is still pending (before backward, a checkpoint, a read of the weights).
  void finish() { write_through(order_.sequence.size()); }
  bool pending() const { return pending_; }

  void before_forward(std::size_t id) override { write_through(order_.unit_prefix.at(id)); }
  void after_forward(std::size_t, std::vector<at::Tensor>&) override {}

 private:
  void write_through(std::size_t n);

  WriteBackOrder order_;
  std::function<void(std::size_t)> write_;
  std::function<void()> finished_;
  std::size_t written_ = 0;
  bool pending_ = false;
};

}  // namespace deepspeed::zero
