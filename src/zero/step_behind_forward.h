#pragma once
// Internal: a stage-0 step whose optimizer update runs behind the next forward (DS_STEP_BEHIND_FORWARD=1, an
// experiment, off: 0.8 % slower at GPT-2 1.5B on an H100, where the parts fill the SMs between the forward's
// kernels instead of running beside them; docs/zero.md says what a bounded variant measured).
//
// At stage 0 the optimizer step is one memory-bound pass over the fp32 masters and moments at the end of the
// step (GPT-2 1.5B: 28 bytes a parameter, ~11 ms of a ~167 ms step on an H200), which no kernel change can
// shorten, while the next forward is bound by its GEMMs. Here the step is launched on a side stream in parts, in
// the order the next forward reaches the weights: the parameters outside every ZeRO-3 unit first (the root:
// embeddings, a final norm, a tied LM head, which the model may use anywhere), then unit by unit. step() returns
// once the compute stream is made to wait for the root's part, and each unit's forward makes it wait for its
// own part (the compute stream waits on an event; the host never does), so the update of block i + 1 can run
// beside the forward of block i. Whatever else reads the weights or the gradients waits for the whole step
// first (finish()): backward, a gather, a checkpoint, zero_grad, the layout's destruction.
//
// On a device without streams (the CPU) the parts run in order where the step is: the same arithmetic and the
// same calls, without the overlap (what the CPU tests check).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include <c10/core/Device.h>
#include <c10/core/Event.h>
#include <c10/core/Stream.h>

#include "deepspeed/zero/strategy.h"
#include "deepspeed/zero/unit.h"

namespace deepspeed::zero {

/// Which optimizer parameters each part of the step updates, and which parts each unit's forward waits for.
struct StepParts {
  /// Per part, in launch order: masks[k][g][i] selects optimizer parameter i of group g.
  std::vector<std::vector<std::vector<bool>>> masks;
  /// Per unit id (0: the root, 1..num_units): how many leading parts its forward needs done (0: none).
  std::vector<std::size_t> unit_needs;
};

/// Pure arithmetic. `unit_of[g][i]`: the unit id (0 = root, 1..num_units) holding optimizer parameter i of
/// group g. The root's part comes first, then each unit's in id order (construction order, the order a model
/// runs its blocks in); a unit without parameters gets no part and needs what precedes it. Throws
/// std::invalid_argument for an id above num_units.
StepParts plan_step_parts(const std::vector<std::vector<std::size_t>>& unit_of, std::size_t num_units);

/// The bookkeeping and the streams of one layout's steps behind the forward; bound to the model's units as
/// their UnitRuntime. Called from the training thread only: a unit's forward and the layout's own calls.
class StepBehindForward final : public UnitRuntime {
 public:
  /// `units`: the model's units (bound here to ids 1..units.size()); `parts`: plan_step_parts' plan over them.
  StepBehindForward(c10::Device device, std::vector<Unit> units, StepParts parts);
  /// Waits for a step still running (the weights must be final when the layout goes), then unbinds the units.
  ~StepBehindForward() override;
  StepBehindForward(const StepBehindForward&) = delete;
  StepBehindForward& operator=(const StepBehindForward&) = delete;

  /// Runs the step's parts through `step_part`. With streams: the side stream first waits for the current
  /// stream's work (the gradients, their norm, the clipping factor), and stays the current stream until close(),
  /// so that the layout's end-of-step work (dropping and zeroing the gradients) queues behind the parts.
  /// `grads`: what the optimizer reads, marked as used on the side stream so that the caching allocator does not
  /// hand their memory to the compute stream before the parts have read it. Returns false, with nothing run and
  /// nothing left open, when the optimizer refuses the first part.
  bool launch(const StepPart& step_part, const std::vector<at::Tensor>& grads);
  /// Ends what launch() opened (a no-op otherwise): records the step's end on the side stream, makes the
  /// stream current again that launch() found, and makes it wait for the root's part.
  void close();
  /// The current stream waits for the whole step (or nothing is pending).
  void finish();
  std::size_t num_parts() const { return parts_.masks.size(); }
  bool has_streams() const { return side_.has_value(); }
  std::int64_t steps() const { return steps_; }

  void before_forward(std::size_t id) override;
  void after_forward(std::size_t, std::vector<at::Tensor>&) override {}

 private:
  c10::Stream current_stream() const;

  c10::Device device_;
  std::vector<Unit> units_;
  StepParts parts_;
  std::optional<c10::Stream> side_;      // absent on a device without streams
  std::optional<c10::Stream> previous_;  // the stream launch() found, while open
  std::vector<c10::Event> part_done_;    // per part, recorded on the side stream
  std::optional<c10::Event> inputs_ready_, step_done_;
  bool pending_ = false;  // a step's parts may still be running
  std::int64_t steps_ = 0;
};

}  // namespace deepspeed::zero
