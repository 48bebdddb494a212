#pragma once
// Internal: the ZeRO layouts (include/deepspeed/zero/strategy.h has the contract), each composed of the same
// parts — flat groups, a gradient reducer, master weights, and at stage 3 the partitioned parameters.
// make_strategy() (strategy_factory.cpp) is the only place that picks one.
#include <future>
#include <memory>
#include <optional>
#include <vector>

#include <c10/core/Event.h>

#include "deepspeed/zero/grad_reducer.h"
#include "deepspeed/zero/master_weights.h"
#include "deepspeed/zero/partitioned_params.h"
#include "deepspeed/zero/placement.h"
#include "deepspeed/zero/strategy.h"
#include "src/zero/serial_worker.h"
#include "src/zero/shard_checkpoint.h"
#include "src/zero/step_behind_forward.h"
#include "src/zero/step_speculation.h"
#include "src/zero/write_back.h"

namespace deepspeed::zero {

/// What every layout is built from.
struct LayoutInputs {
  std::vector<std::vector<at::Tensor>> param_groups;  ///< trainable parameters per optimizer param group
  std::shared_ptr<torch::nn::Module> module;
  std::shared_ptr<comm::Communicator> comm;
  Placement placement;
  ReducerOptions reducer;
  std::int64_t bucket_numel = 0;
  at::ScalarType model_dtype = at::kFloat;  ///< what zero::Init's shards are gathered back into
  /// Called by a sharded layout with its flat groups' tensor sizes and the host bytes it already holds (ZeRO-3's
  /// offloaded weight shards), before it allocates masters and gradient shards; throws UsageError when the
  /// node's host memory cannot hold the rest of the offloaded state.
  std::function<void(const std::vector<std::vector<std::int64_t>>&, std::int64_t)> check_host_memory;
  /// `offload_optimizer.super_offload` at stages 1–2: a step's new weights land behind the next forward, unit by
  /// unit (src/zero/write_back.h), when the model declares units.
  bool write_back_behind_forward = false;
  /// DS_STEP_BEHIND_FORWARD=1 at stage 0: the optimizer step runs behind the next forward, unit by unit
  /// (src/zero/step_behind_forward.h), when the model declares units.
  bool step_behind_forward = false;
};

/// Stage 0: every rank holds the whole model state; flat gradients are all-reduced on the boundary. The
/// optimizer updates the model's parameters (fp32) or fp32 copies of them (16-bit model), one tensor per
/// parameter so that its state dict is PyTorch's.
class ReplicatedStrategy final : public Strategy {
 public:
  /// `reference_reducer`: one blocking all-reduce per parameter (NaiveAllReduce) instead of the bucketed one.
  ReplicatedStrategy(LayoutInputs in, bool reference_reducer);
  ~ReplicatedStrategy() override;

  std::vector<std::vector<at::Tensor>> optimizer_params() const override;
  void begin_backward(bool boundary) override {
    finish_step();
    reducer_->prepare_backward(boundary);
  }
  void end_backward() override { reducer_->finish_backward(); }
  std::vector<at::Tensor> optimizer_gradients() override;
  /// With DS_STEP_BEHIND_FORWARD=1 and units: the parts are queued and this returns; end_step() then queues
  /// the gradients' release behind them and closes the step (step_behind_forward.h).
  bool step_behind_forward(const StepPart& step_part) override;
  std::int64_t steps_behind_forward() const override { return behind_ ? behind_->steps() : 0; }
  void after_optimizer_step() override;
  void end_step() override;
  void zero_grad() override {
    finish_step();
    reducer_->zero_grad();
  }
  void gather(std::size_t) override { finish_step(); }
  bool sharded() const override { return false; }
  /// An optimizer that up-casts reads a one-micro-step window's 16-bit gradients on one rank as autograd made
  /// them (GradientReducer::allow_gradients_as_they_are).
  void optimizer_upcasts_gradients(bool on) override {
    optimizer_upcasts_ = on;
    reducer_->allow_gradients_as_they_are(on && masters_.has_value());
  }
  std::vector<std::vector<at::Tensor>> model_copies() const override;
  void optimizer_writes_model_copies(bool on) override { optimizer_writes_copies_ = on; }
  void adopt_parameter_values(std::size_t u) override;
  void save(checkpoint::SaveTarget& target) override;
  void load(checkpoint::LoadSource& source, const checkpoint::LoadOptions& options) override;
  void save_optimizer_state(checkpoint::SaveTarget& target, const std::function<c10::IValue()>& state) const override;
  c10::IValue load_optimizer_state(checkpoint::LoadSource& source) override;

 private:
  std::vector<FlatGroup*> groups() const;
  /// The model's units and the parts of the step over them; null when the model declares none.
  std::unique_ptr<StepBehindForward> plan_step_behind_forward();
  /// Whatever reads the weights, the gradients or the optimizer's state next waits for a step behind the forward.
  void finish_step() const {
    if (behind_) behind_->finish();
  }

  std::size_t num_optimizer_groups_;
  std::vector<std::unique_ptr<FlatGroup>> flat_groups_;
  std::unique_ptr<GradientReducer> reducer_;
  std::optional<MasterWeights> masters_;  // absent when the optimizer updates the fp32 model itself
  bool optimizer_upcasts_ = false;
  bool optimizer_writes_copies_ = false;
  bool refused_behind_ = false;              // step_behind_forward() said why not, once
  std::unique_ptr<StepBehindForward> behind_;  // last: it waits for a running step before the buffers go
};

/// What stages 1–3 share: each rank owns one chunk of every bucket — the fp32 master of it, the optimizer state
/// over it, the reduced gradient of it — and checkpoints them in its own file (shard_checkpoint.h). A derived
/// layout lays out the groups and hands them over with attach(). Where each chunk's state lives is the
/// Placement's: with offload, the host chunks are stepped by the CPU optimizer, which also writes their
/// 16-bit values into pinned copies that are uploaded after the step.
class ShardedStateStrategy : public Strategy {
 public:
  std::vector<std::vector<at::Tensor>> optimizer_params() const override;
  std::vector<std::vector<at::Tensor>> optimizer_param_copies() const override;
  void fused_cpu_optimizer(bool on) override { fused_cpu_optimizer_ = on; }
  void optimizer_upcasts_gradients(bool on) override { optimizer_upcasts_ = on; }
  bool use_host_stepper(HostStepper stepper, HostStepMode mode) override;
  std::pair<std::int64_t, std::int64_t> speculation_counts() const override;
  void track_host_norms(SquaredNorm squared_norm, DeviceSquaredSum device_squared_sum) override {
    reducer_->track_host_norms(std::move(squared_norm), std::move(device_squared_sum));
  }
  double squared_gradient_norm(const std::vector<at::Tensor>& grads, const SquaredNorm& squared_norm) override;
  /// Offloaded layouts sum on the host (their host pieces' norms are tracked as they land).
  std::optional<at::Tensor> device_squared_gradient_norm(const std::vector<at::Tensor>& grads,
                                                          const SquaredNormTensor& local) const override {
    if (placement_.offloads()) return std::nullopt;
    return Strategy::device_squared_gradient_norm(grads, local);
  }
  std::int64_t host_bytes() const override;
  std::vector<std::vector<std::int64_t>> flat_group_numels() const override;
  std::vector<at::Tensor> optimizer_gradients() override;
  void end_step() override;
  void zero_grad() override { reducer_->zero_grad(); }
  bool sharded() const override { return true; }
  void save(checkpoint::SaveTarget& target) override;
  void load(checkpoint::LoadSource& source, const checkpoint::LoadOptions& options) override;
  void save_optimizer_state(checkpoint::SaveTarget& target, const std::function<c10::IValue()>& state) const override;
  c10::IValue load_optimizer_state(checkpoint::LoadSource& source) override;

 protected:
  ShardedStateStrategy(int stage, const LayoutInputs& in);
  ~ShardedStateStrategy() override;
  /// `groups` (owned by the derived layout) get a reducer and fp32 masters, placed by in.placement;
  /// `fill(g, master)` sets group g's master to this rank's shard of the weights. `host_bytes_held`: host
  /// memory the derived layout has allocated already (counted in the estimate the host check compares).
  void attach(std::vector<FlatGroup*> groups, const LayoutInputs& in,
              const std::function<void(std::size_t, const ShardBuffer&)>& fill, std::int64_t host_bytes_held = 0);
  /// The reducer's hooks and the masters point into the derived layout's groups: its destructor calls this
  /// before the groups go.
  void detach();
  /// Whether optimizer state saved at `saved_stage` loads into this layout.
  virtual bool loads_stage(int saved_stage) const = 0;
  /// Bucket b of group g after the step, in `options` (the model's 16-bit dtype on the device): the uploaded
  /// 16-bit copy the CPU optimizer wrote, else the master converted. An upload is asynchronous from pinned
  /// memory: call uploads_enqueued() once every chunk of the step is asked for.
  at::Tensor updated_chunk(std::size_t g, std::size_t b, const at::TensorOptions& options) const;
  /// The same values written into `destination` (bucket b's chunk in the weights) without a device copy in
  /// between: what one rank's all-gather would have copied. Asynchronous like updated_chunk().
  void write_updated_chunk(std::size_t g, std::size_t b, at::Tensor& destination) const;
  /// Waits for the queued host update of bucket b of group g, if any (rethrows its error).
  void wait_for_update(std::size_t g, std::size_t b) const;
  void uploads_enqueued();
  /// Both run by the derived layouts: before the reducer's prepare_backward (an update during backward is
  /// armed on the boundary), and first thing after the optimizer step (the host buckets not yet updated are
  /// queued, in the order updated_chunk() will ask for them).
  void before_backward(bool boundary);
  /// Returns whether this step's host updates are queued in step_order_ (false: none, or queued during
  /// backward as their gradients landed).
  bool queue_host_steps();
  /// The buckets in the order queue_host_steps() queues them and the write-back asks for them: (group,
  /// bucket) order unless a derived layout sets another.
  std::vector<BucketId> step_order_;
  ShardLayout shard_layout() const;

  std::size_t num_optimizer_groups_;
  Placement placement_;
  at::ScalarType model_dtype_;
  std::unique_ptr<BucketReducer> reducer_;
  std::unique_ptr<MasterWeights> masters_;
  std::vector<ShardBuffer> param_copies_;  // per group: 16-bit host copies of the host chunks (offload)
  bool copies_in_weight_shards_ = false;   // set before attach(): the copies are views of the groups' param_shard
  bool fused_cpu_optimizer_ = false;
  bool optimizer_upcasts_ = false;
  std::optional<c10::Event> uploads_done_;  // the CPU optimizer must not rewrite a copy still being uploaded

 private:
  /// Where host bucket b of group g sits in the optimizer: param group, tensor, element offset, length.
  struct HostRange {
    std::size_t optimizer_group, optimizer_index;
    std::int64_t offset, numel;
  };
  HostRange host_range(std::size_t g, std::size_t b) const;
  /// Queues the update of host bucket b of group g on step_worker_ with factor `scale`, or, `speculative`
  /// (queued during a speculating backward), as StepSpeculation says; updated_chunk(g, b) waits for it.
  void queue_host_step(std::size_t g, std::size_t b, float scale, bool speculative);
  /// Speculation: the step's factor is known — keep the speculative updates, or queue their redos.
  void settle_speculation();

  std::optional<HostStepper> stepper_;
  HostStepMode step_mode_ = HostStepMode::kAfterStep;
  std::unique_ptr<StepSpeculation> speculation_;
  bool stepping_in_backward_ = false;  // this window's host buckets are queued as they land
  std::vector<std::vector<std::size_t>> optimizer_index_;  // per group, per master piece: its position in its param group
  std::vector<std::vector<std::shared_future<void>>> host_steps_;  // per group, per bucket: this step's update
  std::unique_ptr<SerialWorker> step_worker_;
};

/// Stages 1 and 2: the sharded state over flat groups of the whole model, whose weights stay replicated: after
/// the step each rank writes its chunks into the model's flat weights and every bucket is all-gathered. Stage 1
/// reduce-scatters on the boundary from a full local gradient buffer, stage 2 every micro-step.
class ShardedStrategy final : public ShardedStateStrategy {
 public:
  ShardedStrategy(int stage, LayoutInputs in);
  ~ShardedStrategy() override;

  bool use_host_stepper(HostStepper stepper, HostStepMode mode) override;
  void begin_backward(bool boundary) override {
    finish_write_back();
    before_backward(boundary);
    reducer_->prepare_backward(boundary);
  }
  void end_backward() override { reducer_->finish_backward(); }
  /// Under a deferred write-back (write_back.h), in a step whose host updates wait for the gradient norm, the
  /// root unit's buckets are written before this returns, the rest by the units' forwards or the next call
  /// below that reads the weights.
  void after_optimizer_step() override;
  void adopt_parameter_values(std::size_t u) override;
  /// Stages 1–2 have one unit, always whole: gathering it only waits for a deferred write-back.
  void gather(std::size_t) override { finish_write_back(); }
  void save(checkpoint::SaveTarget& target) override {
    finish_write_back();  // the masters and moments are final only once every deferred host update ran
    ShardedStateStrategy::save(target);
  }
  void load(checkpoint::LoadSource& source, const checkpoint::LoadOptions& options) override {
    finish_write_back();
    ShardedStateStrategy::load(source, options);
  }

 private:
  bool loads_stage(int saved_stage) const override { return saved_stage == 1 || saved_stage == 2; }
  /// This rank's chunk of every bucket of group g's flat weights → `master`.
  void take_own_chunks(std::size_t g, const ShardBuffer& master) const;
  /// The model's declared units wait for their buckets in their forward; false when it declares none.
  bool defer_write_back();
  void finish_write_back() {
    if (write_back_) write_back_->finish();
  }
  /// Writes bucket `id` back into the model's flat weights and starts its all-gather; `wait`: the
  /// weights are read next (a unit's forward), so the all-gather is waited for now (under NCCL the wait
  /// orders the current stream; under Gloo it blocks).
  void write_bucket(BucketId id, bool wait);
  void gathers_started();

  std::vector<std::unique_ptr<FlatGroup>> flat_groups_;
  bool write_back_behind_forward_;
  std::vector<Unit> units_;  // bound to write_back_ while it lives
  std::unique_ptr<ForwardWriteBack> write_back_;
  std::vector<comm::Work> gathers_;  // this step's all-gathers, and their inputs, alive until they finish
  std::vector<at::Tensor> gather_inputs_;
};

/// Stage 3: the sharded state over the ZeRO-3 units' groups, with the model's weights partitioned too
/// (partitioned_params.h). After the step each rank writes its fp32 masters into its 16-bit weight shards;
/// the next use of a unit gathers the new values.
class PartitionedStrategy final : public ShardedStateStrategy {
 public:
  PartitionedStrategy(LayoutInputs in, PartitionOptions partition, bool gather_16bit_weights_on_save);
  ~PartitionedStrategy() override;

  void begin_forward() override { partitioned_->begin_forward(); }
  void begin_backward(bool boundary) override;
  void end_backward() override;
  void after_optimizer_step() override;
  std::size_t num_units() const override { return partitioned_->num_units(); }
  std::size_t unit_of(const at::Tensor& param) const override { return partitioned_->unit_of(param).value_or(0); }
  void gather(std::size_t u) override { partitioned_->gather(u); }
  void release(std::size_t u) override { partitioned_->release(u); }
  void adopt_parameter_values(std::size_t u) override;
  std::int64_t unit_gathers() const override { return partitioned_->gathers(); }
  std::int64_t gathered_numel() const override { return partitioned_->live_numel(); }
  bool allows_16bit_model_save() const override { return gather_16bit_weights_on_save_; }
  std::int64_t host_bytes() const override;

 private:
  bool loads_stage(int saved_stage) const override { return saved_stage == 3; }
  /// Whether the CPU optimizer wrote bucket b of group g straight into its weight shard.
  bool writes_shard_in_place(std::size_t g, std::size_t b) const;
  bool gather_16bit_weights_on_save_;
  std::unique_ptr<PartitionedParams> partitioned_;
};

}  // namespace deepspeed::zero
