#pragma once
/// \file
/// A ZeRO layout: how the trainable parameters, their gradients, the fp32 master weights and the optimizer
/// state are laid out over the data-parallel ranks, and what each training step does to keep them consistent.
/// One implementation per layout, built by make_strategy() from the config (the only place that reads
/// `zero_optimization.stage`):
///
///   replicated   stage 0   every rank holds everything; gradients are all-reduced
///   sharded      stage 1   fp32 masters and optimizer state split across ranks; gradients reduce-scattered
///                          on the accumulation boundary
///                stage 2   the same, gradients reduce-scattered every micro-step (no full gradient buffer)
///   partitioned  stage 3   the parameters too, gathered per unit on use (partitioned_params.h)
///
/// A strategy owns its flat groups, its gradient reducer, its master weights (allocated through a Placement)
/// and, at stage 3, the partitioned parameters. It is a checkpoint part (checkpoint/state.h): it saves its
/// layout description and fp32 master weights, and places the optimizer's state (save_optimizer_state).
///
/// Contract: every method is called on every rank, the same number of times in the same order, from the
/// training thread; methods marked "collective" communicate. The engine's sequence is, per micro-step,
///
///   begin_forward() · model forward · begin_backward(boundary) · autograd · end_backward()
///
/// and on the accumulation boundary
///
///   optimizer_gradients() · sum_over_shards(‖g‖²) · optimizer step · after_optimizer_step() · end_step()
///
/// (after_optimizer_step() is left out when the step is skipped for an fp16 overflow; end_step() never is). The
/// optimizer step is the optimizer's step(), or, where step_behind_forward() takes it, the parts that runs.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <memory>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>
#include <torch/nn/module.h>

#include "deepspeed/checkpoint/state.h"
#include "deepspeed/comm/communicator.h"
#include "deepspeed/config/config.h"
#include "deepspeed/zero/flat_group.h"
#include "deepspeed/zero/layout_choice.h"

namespace deepspeed::zero {

/// ‖t‖² summed over tensors (the engine passes optim::squared_l2_norm; zero does not depend on optim).
using SquaredNorm = std::function<double(const std::vector<at::Tensor>&)>;
/// ‖t‖² of one CUDA tensor as a 0-d fp64 device tensor, enqueued on the current stream, bit-identical to
/// SquaredNorm on the same elements (the engine passes optim::device_squared_sum).
using DeviceSquaredSum = std::function<at::Tensor(const at::Tensor&)>;
/// ‖t‖² summed over tensors on one device, left there as a 0-d fp64 tensor (optim::squared_l2_norm_tensor).
using SquaredNormTensor = std::function<at::Tensor(const std::vector<at::Tensor>&)>;

/// ZeRO-Offload's CPU optimizer as an offloaded layout drives it: range by range, bucket by bucket, so that one
/// bucket's upload overlaps the next bucket's update, and, where HostStepMode allows, each bucket is updated as
/// soon as its gradient is complete on the host while backward goes on. The engine builds one from
/// DeepSpeedCPUAdam.
struct HostStepper {
  /// Once per step, before its first range, when the update starts during backward: the optimizer's step
  /// counts advance. (Otherwise the optimizer's step() does this itself.)
  std::function<void()> begin_during_backward;
  /// After the optimizer's step(): the factor this step's gradients take (the engine's unscale × clipping
  /// coefficient; 1 when it gave none).
  std::function<float()> gradient_scale;
  /// Updates elements [offset, offset + numel) of the optimizer's tensor `index` in param group `group` from
  /// `grad` (those elements' gradient) multiplied by `scale`, writing their 16-bit copies too; with `backup`
  /// (3 × numel floats), first saves the old master, exp_avg and exp_avg_sq values there. Runs on the
  /// layout's worker thread.
  std::function<void(std::size_t group, std::size_t index, std::int64_t offset, std::int64_t numel,
                     const at::Tensor& grad, float scale, float* backup)>
      range;
  /// Puts back what a range with a backup saved (its 16-bit copies are left: the redo rewrites them).
  std::function<void(std::size_t group, std::size_t index, std::int64_t offset, std::int64_t numel,
                     const float* backup)>
      restore;
};

/// One part of the optimizer's step over the parameters `part` selects, in optimizer_params()' indexing
/// (part[g][i]; optim::Optimizer::step_part); `last`: the step's last part. Returns false where the optimizer
/// cannot step in parts (nothing updated).
using StepPart = std::function<bool(const std::vector<std::vector<bool>>& part, bool last)>;

/// When the host buckets are updated.
enum class HostStepMode {
  /// After the optimizer step, with the step's factor (the global norm or the overflow check decides it).
  kAfterStep,
  /// During backward, as each bucket's gradient is final: nothing makes the factor differ from 1 (no
  /// clipping, no fp16 loss scale).
  kDuringBackward,
  /// During backward with factor 1, speculatively (`offload_optimizer.super_offload` with clipping): undone
  /// and redone when the step's factor turns out otherwise (src/zero/step_speculation.h).
  kSpeculative,
};

class Strategy : public checkpoint::Stateful {
 public:
  ~Strategy() override;

  /// Per optimizer param group, the tensors the optimizer updates: fp32 masters, or the model's own
  /// parameters when they are fp32 and replicated. Fixed for the strategy's lifetime.
  virtual std::vector<std::vector<at::Tensor>> optimizer_params() const = 0;
  /// Parallel to optimizer_params(): for each offloaded master, a 16-bit host buffer the optimizer may fill
  /// with the updated values in the same pass (DeepSpeedCPUAdam does), undefined elsewhere; empty when nothing
  /// is offloaded.
  virtual std::vector<std::vector<at::Tensor>> optimizer_param_copies() const { return {}; }
  /// The optimizer is DeepSpeedCPUAdam with the copies above registered: it fills them, and it reads the
  /// offloaded masters' 16-bit gradients as they are. The layout then uploads the copies after each step and
  /// skips converting either.
  virtual void fused_cpu_optimizer(bool on) {}
  /// Parallel to optimizer_params(): the model's 16-bit weights each fp32 master is copied into after the
  /// step, for an optimizer that writes them itself (optim::Optimizer::take_model_copies); empty when the
  /// layout has no device masters to offer (fp32 model, stages 1-3 for now).
  virtual std::vector<std::vector<at::Tensor>> model_copies() const { return {}; }
  /// The optimizer took model_copies(): after_optimizer_step() then leaves the weights as the step wrote them.
  virtual void optimizer_writes_model_copies(bool on) {}
  /// The optimizer up-casts 16-bit gradients itself (optim::Optimizer::upcasts_gradients): optimizer_gradients()
  /// then hands the reduced 16-bit buffers over as they are, not an fp32 copy of each. Set before the first step.
  virtual void optimizer_upcasts_gradients(bool on) {}
  /// With offload and fused_cpu_optimizer: the layout steps the host masters itself through `stepper` (the
  /// optimizer's step() leaves them alone), when `mode` says. Returns false when the layout has nothing on the
  /// host (the optimizer steps everything itself).
  virtual bool use_host_stepper(HostStepper stepper, HostStepMode mode) { return false; }
  /// Under HostStepMode::kSpeculative: the steps whose host update started during backward, and those of
  /// them whose factor was not 1, so their speculative ranges were undone and redone. {0, 0} otherwise.
  virtual std::pair<std::int64_t, std::int64_t> speculation_counts() const { return {0, 0}; }
  /// Offload: ‖g‖² of the host gradients is computed while they land (BucketReducer::track_host_norms), on
  /// the device where `device_squared_sum` is given and the chunk crosses unchanged.
  virtual void track_host_norms(SquaredNorm squared_norm, DeviceSquaredSum device_squared_sum = {}) {}
  /// ‖g‖² of this rank's optimizer_gradients() `grads` (before sum_over_shards): `squared_norm(grads)`, or
  /// with tracked host norms, those plus `squared_norm` of the rest.
  virtual double squared_gradient_norm(const std::vector<at::Tensor>& grads, const SquaredNorm& squared_norm) {
    return squared_norm(grads);
  }

  // ---- the training step
  /// Before the model's forward (stage 3: the root unit is gathered). Collective.
  virtual void begin_forward() {}
  /// Before autograd; `boundary`: this micro-step ends an accumulation window.
  virtual void begin_backward(bool boundary) = 0;
  /// After autograd returns: completes this micro-step's gradient reduction. Collective.
  virtual void end_backward() = 0;
  /// On the boundary: gives every optimizer tensor its averaged fp32 gradient and returns those gradients
  /// (the engine unscales and clips them in place).
  virtual std::vector<at::Tensor> optimizer_gradients() = 0;
  /// A sum over this rank's gradients (‖g‖² of optimizer_gradients()) → the same sum over the whole model:
  /// summed across ranks when the layout shards gradients, unchanged otherwise. Collective.
  double sum_over_shards(double local_sum) const;
  /// ‖g‖² of this rank's optimizer_gradients() `grads` over the whole model, as sum_over_shards() would give it,
  /// left on the gradients' device as a 0-d fp64 tensor: `local(grads)`, all-reduced across ranks when the layout
  /// shards gradients (under NCCL the current stream waits for it, not the host). nullopt, with nothing done,
  /// where the sum is the host's: gradients on several devices or offloaded (their host norms are tracked).
  /// The choice is the layout's, so every rank makes the same one. Collective on sharded layouts.
  virtual std::optional<at::Tensor> device_squared_gradient_norm(const std::vector<at::Tensor>& grads,
                                                                  const SquaredNormTensor& local) const;
  /// After the optimizer updated its tensors: makes the model's weights equal them. Collective.
  virtual void after_optimizer_step() = 0;
  /// Ends a boundary, stepped or skipped: drops the optimizer's gradients, zeroes accumulated ones.
  virtual void end_step() = 0;
  /// The step behind the next forward (DS_STEP_BEHIND_FORWARD=1 at stage 0; src/zero/step_behind_forward.h): in
  /// place of the optimizer's step(), runs the step as `step_part` parts in the order the next forward needs the
  /// weights (parameters outside every unit first, then unit by unit), on a side stream where the device has
  /// streams, and returns; each unit's forward then waits only for its own part, and whatever else reads the
  /// weights or gradients (backward, a gather, a checkpoint, zero_grad) for all of them. Returns false, with
  /// nothing run, where the layout does not do this (the default) or the optimizer cannot step in parts: the
  /// engine then calls step(). Call where the optimizer step goes; after_optimizer_step() and end_step() follow.
  virtual bool step_behind_forward(const StepPart& step_part) { return false; }
  /// Steps run by step_behind_forward() so far (for tests and the log).
  virtual std::int64_t steps_behind_forward() const { return 0; }
  /// Zeroes accumulated gradients (Engine::zero_grad).
  virtual void zero_grad() = 0;
  /// True when gradients and optimizer state are split across ranks (each rank holds a shard).
  virtual bool sharded() const = 0;

  // ---- whole parameters, one unit at a time (checkpoints, GatheredParameters)
  /// Layouts other than stage 3 have one unit, always whole, holding every parameter.
  virtual std::size_t num_units() const { return 1; }
  /// The unit holding `param`; 0 (the root) for parameters this strategy does not lay out (frozen ones).
  virtual std::size_t unit_of(const at::Tensor& param) const { return 0; }
  /// Makes unit `u`'s parameters whole until release(u). Collective.
  virtual void gather(std::size_t u) {}
  /// Ends a gather(u); the root and persistent units stay whole. Collective.
  virtual void release(std::size_t u) {}
  /// Unit `u` is whole and its values were changed in place (a checkpoint load, a GatheredParameters edit):
  /// brings this rank's shards and fp32 master weights of it up to date. Local.
  virtual void adopt_parameter_values(std::size_t u) = 0;
  /// Bytes of host memory the layout's own state holds now (offloaded masters, gradient shards, pinned
  /// buffers; the optimizer's state is the optimizer's).
  virtual std::int64_t host_bytes() const { return 0; }
  /// All-gathers of units started so far (stage 3), for tests and tuning.
  virtual std::int64_t unit_gathers() const { return 0; }
  /// Elements of the units gathered whole now (stage 3; between steps: the root and the persistent units).
  virtual std::int64_t gathered_numel() const { return 0; }
  /// The tensor sizes of each flat group the layout built (what the memory estimate plans); empty if none.
  virtual std::vector<std::vector<std::int64_t>> flat_group_numels() const { return {}; }
  /// Whether save_16bit_model may gather the weights (stage 3 asks
  /// stage3_gather_16bit_weights_on_model_save; DeepSpeed's rule).
  virtual bool allows_16bit_model_save() const { return true; }

  // ---- checkpoints (checkpoint::Stateful: layout description and fp32 masters)
  /// Puts the optimizer's state dict (`state()` makes it) where this layout keeps it: the model-states file when
  /// replicated, this rank's optimizer-states file when sharded.
  virtual void save_optimizer_state(checkpoint::SaveTarget& target, const std::function<c10::IValue()>& state) const = 0;
  /// This rank's optimizer state dict from a checkpoint of a compatible layout, re-cut when the checkpoint was
  /// written by another number of ranks or bucket size. Call after load() (which checks compatibility).
  virtual c10::IValue load_optimizer_state(checkpoint::LoadSource& source) = 0;

  int stage() const { return stage_; }
  std::int64_t bucket_numel() const { return bucket_numel_; }

 protected:
  Strategy(int stage, std::int64_t bucket_numel, std::shared_ptr<torch::nn::Module> module,
           std::shared_ptr<comm::Communicator> comm);

  /// Writes what every layout records in the model-states file: zero_stage, layout {bucket_numel, alignment,
  /// world_size}, and param_shapes (per group, the names and shapes of its parameters: what consolidation needs
  /// to turn flat groups back into tensors).
  void save_layout(checkpoint::SaveTarget& target, const std::vector<FlatGroup*>& groups, int layout_world_size) const;
  /// Throws UsageError unless the checkpoint's optimizer state can be loaded into this layout (stages that
  /// `compatible` accepts).
  void check_saved_stage(checkpoint::LoadSource& source, const std::function<bool(int)>& compatible) const;

  int stage_;
  std::int64_t bucket_numel_;
  std::shared_ptr<torch::nn::Module> module_;
  std::shared_ptr<comm::Communicator> comm_;
};

/// The layout `config.zero_optimization` asks for, over the trainable parameters `param_groups` (one list
/// per optimizer param group) of `module`, which is on comm's device in the training dtype with rank 0's
/// values on every rank. Lays the parameters out in flat buffers (their values are kept), gathers what
/// zero::Init partitioned, and finds ZeRO-3 units. Collective.
/// DS_REFERENCE_REDUCER=1 swaps the replicated layout's reducer for the per-tensor reference.
std::unique_ptr<Strategy> make_strategy(const config::Config& config, std::vector<std::vector<at::Tensor>> param_groups,
                                        std::shared_ptr<torch::nn::Module> module,
                                        std::shared_ptr<comm::Communicator> comm);

/// DeepSpeed's rule that ZeRO runs only tested optimizers (Adam/AdamW) unless zero_allow_untested_optimizer;
/// `client_optimizer`: the program passed its own. Throws ConfigError.
void check_optimizer_supported(const config::Config& config, bool client_optimizer);

/// DeepSpeed's start-up line naming the optimizer wrapper ("Creating torch.bfloat16 ZeRO stage 2 optimizer",
/// "Creating fp16 optimizer with dynamic loss scale", ...); empty when DeepSpeed prints none.
std::string optimizer_creation_message(const config::Config& config);

}  // namespace deepspeed::zero
