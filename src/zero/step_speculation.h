#pragma once
// ZeRO-Offload's speculation-then-validation (`offload_optimizer.super_offload`): with gradient clipping the
// host update of a bucket may not use its gradient until the global norm is known, after backward — yet the
// host update is the longest part of an offloaded step and backward leaves the host's memory bandwidth mostly
// idle. So while the norm is unknown, buckets whose gradient is final are updated anyway with factor 1 (the
// update a step whose norm does not exceed `gradient_clipping` makes), each saving the values it overwrites
// into a backup first. Once the norm is known: factor 1 → the speculative updates stand (the common case
// after warm-up); any other factor → each speculated range is restored from its backup and updated again
// with that factor. Either way every element ends bit-identical to the update a non-speculative step makes,
// so speculation changes timing, never results.
//
// This class is the bookkeeping only: which ranges ran speculatively, how much backup is left, the verdict.
// The layout (sharded_state.cpp) runs the updates on its serial step worker and queues the redos.

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

namespace deepspeed::zero {

/// Elements of backup a rank keeps for speculation when `host_numel` elements of its optimizer state are
/// stepped on its host: a quarter of them (each backed-up element costs 12 bytes: master, exp_avg,
/// exp_avg_sq). Backward overlaps only part of the host update (3.8B on one H200: ~0.3 s of backward beside a
/// ~0.9 s update), so a larger backup would sit unused; a range beyond it waits for the norm instead.
std::int64_t speculation_backup_numel(std::int64_t host_numel);

/// Elements one speculative range covers at most. A range that starts before the verdict finishes with its
/// backup even when the verdict arrives meanwhile; kept short, the rest of the bucket then runs without one
/// (the backup makes the pass ~1.5× the memory traffic).
constexpr std::int64_t kSpeculationSlice = std::int64_t{1} << 24;

class StepSpeculation {
 public:
  /// Owns a backup of 3 × `backup_numel` floats (allocated here, written only by speculative updates).
  explicit StepSpeculation(std::int64_t backup_numel);

  /// A range updated speculatively: elements [begin, begin + numel) of bucket `bucket` of group `group`
  /// (offsets within the bucket's chunk), its old values at `backup` (3 × numel floats).
  struct Speculated {
    std::size_t group = 0, bucket = 0;
    std::int64_t begin = 0, numel = 0;
    float* backup = nullptr;
  };
  /// How the caller updates the next elements of a bucket.
  struct Ticket {
    /// Elements to update now: speculatively (factor 1, saving into `backup`) when backup is set, else with
    /// `scale`, the verdict's factor. 0 with `skip`: the step was abandoned; update nothing.
    std::int64_t numel = 0;
    float* backup = nullptr;
    float scale = 1.0f;
    bool skip = false;
  };

  /// Training thread, before the boundary micro-step's backward, when no range of the previous step is still
  /// being updated: the verdict becomes unknown again and the backup free. The step speculates only if the
  /// last decided step's factor was 1 (or none was decided yet): while clipping triggers step after step, as
  /// in warm-up, a speculation would only be undone, and its backup traffic and restore slow the step down
  /// (3.8B, one H200: 2.05 s per step against ~1.4 s), so those steps wait for the norm instead; the first
  /// step with factor 1 turns speculation back on for the next. Returns whether this step speculates.
  bool begin_step();
  /// Step worker, for the elements [begin, begin + numel) of bucket `bucket` of group `group` that are not yet
  /// updated: while the verdict is unknown, as many as the backup still holds, at most kSpeculationSlice
  /// (recorded as speculated); with the backup full, or in a step that does not speculate, blocks until the
  /// verdict.
  Ticket next(std::size_t group, std::size_t bucket, std::int64_t begin, std::int64_t numel);
  /// Training thread, once the step's factor is known: publishes it and returns the ranges to restore and
  /// update again with it (none when it is 1). Ranges still being updated are among them: a redo must be
  /// queued behind them.
  std::vector<Speculated> decide(float scale);
  /// Ends a step that will not be decided (teardown after an error): pending and blocked updates are skipped.
  void abandon();

  /// Host memory the backup takes.
  std::int64_t backup_bytes() const { return 3 * static_cast<std::int64_t>(sizeof(float)) * capacity_; }
  /// Steps that speculated, and those whose speculation was undone, so far.
  std::int64_t speculated_steps() const;
  std::int64_t rolled_back_steps() const;

 private:
  mutable std::mutex mutex_;
  std::condition_variable decided_;
  std::int64_t capacity_;
  std::unique_ptr<float[]> backup_;
  std::int64_t used_ = 0;
  std::optional<float> verdict_;
  bool speculating_ = false;   // this step speculates
  bool last_was_one_ = true;   // the last decided factor was 1 (optimistic before the first)
  bool abandoned_ = false;
  std::vector<Speculated> speculated_;
  std::int64_t speculated_steps_ = 0, rolled_back_steps_ = 0;
};

}  // namespace deepspeed::zero
