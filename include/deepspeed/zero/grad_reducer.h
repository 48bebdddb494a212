#pragma once
/// \file
/// Gradient reduction across data-parallel ranks, overlapped with backward.
///
/// Gradients land in the FlatGroups' bucket layout. A post-accumulate-grad hook on every parameter counts it
/// in as autograd finishes it; a bucket whose gradients are all in is reduced while backward computes the
/// rest. Buckets are launched strictly in layout order, so all ranks issue the same collectives in the same
/// order however autograd schedules its work. finish_backward() launches what is left (parameters unused in
/// this backward included), waits, and applies DeepSpeed's averaging (gradient_predivide_factor /
/// prescale_gradients).
///
/// How gradients are reduced (Reduction):
///   kAllReduce                  full gradients in `accum_dtype`, all-reduced on the accumulation boundary
///   kReduceScatterOnBoundary    full gradients accumulated locally; on the boundary each bucket is
///                               reduce-scattered and this rank keeps its chunk in the gradient shard
///   kReduceScatterEachMicroStep no full gradient buffer: each micro-step every bucket is staged,
///                               reduce-scattered, and its chunk added into the shard (DeepSpeed's ZeRO-2/3)
///
/// When a full buffer exists and the parameters' dtype equals `accum_dtype`, their .grad() are views into it
/// and autograd accumulates in place; otherwise the hook adds each .grad() into the buffer (or the staging
/// buffer) and frees it. NaiveAllReduce is the reference for kAllReduce: one blocking all-reduce per
/// parameter after backward.
///
/// Gradient shards are allocated through the Placement. A bucket whose shard chunk the Placement puts on the
/// host (ZeRO-Offload) is brought there as soon as its reduce-scatter is launched: a background thread waits
/// for it (on a side stream under NCCL) and copies it into the pinned host shard while autograd goes on; a
/// later micro-step of the window either lands in a pinned landing buffer and is added into the host shard in
/// the accumulation dtype, or (accumulate_on_device) is added into a device window buffer, which the
/// boundary's landing adds its own micro-step to and copies over. finish_backward() returns once every chunk
/// has landed. Autograd's thread opens a host-bound bucket only while the landings pending and that bucket fit
/// in ReducerOptions::landing_lead_bytes, and waits for the landing thread otherwise (src/zero/landing_budget.h).

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Stream.h>

#include "deepspeed/comm/communicator.h"
#include "deepspeed/zero/flat_group.h"
#include "deepspeed/zero/placement.h"

namespace deepspeed::zero {

class SerialWorker;
class LandingBudget;

/// DeepSpeed's averaging arithmetic (engine.allreduce_bucket): the factor applied before and after the sum.
struct Averaging {
  double before = 1.0;
  double after = 1.0;
  static Averaging deepspeed(int world_size, bool prescale_gradients, double predivide_factor);
};

enum class Reduction { kAllReduce, kReduceScatterOnBoundary, kReduceScatterEachMicroStep };

struct ReducerOptions {
  Reduction reduction = Reduction::kAllReduce;
  at::ScalarType accum_dtype = at::kFloat;            ///< full buffer and shard dtype
  std::optional<at::ScalarType> communication_dtype;  ///< nullopt: accum_dtype
  bool prescale_gradients = false;
  double gradient_predivide_factor = 1.0;
  /// Offload, kReduceScatterEachMicroStep: host chunks of micro-steps before the boundary are added into a
  /// device window buffer; the boundary adds its own on the device and copies the sum to the host once.
  bool accumulate_on_device = false;
  /// Offload: how many bytes of send buffers bound for the host may wait for their landing, counting the one
  /// being opened (at least two of the largest host buckets): backward waits for a landing before opening one
  /// more. Bounds the device memory autograd's thread, which runs ahead of the GPU, holds for the host.
  std::int64_t landing_lead_bytes = kLandingLeadBytes;
  /// Several ranks: device buckets whose reduction may be in flight at once; launching one more first folds
  /// the oldest in and frees its send buffer. 0: every bucket is held until finish_backward().
  std::size_t reductions_in_flight = kReductionsInFlight;
};

/// What the engine drives. All ranks must call each method the same number of times in the same order.
class GradientReducer {
 public:
  virtual ~GradientReducer() = default;
  /// Before autograd. `boundary`: this micro-step ends an accumulation window.
  virtual void prepare_backward(bool boundary) = 0;
  /// After autograd returns: completes this micro-step's reduction.
  virtual void finish_backward() = 0;
  /// Zeroes accumulated gradients (after an optimizer step or a skipped one).
  virtual void zero_grad() = 0;
  /// After the boundary's finish_backward(): the averaged gradients this rank owns — per FlatGroup the full
  /// flat buffer (kAllReduce; per parameter for the reference), or every piece of every group's shard.
  virtual std::vector<at::Tensor> gradients() = 0;
  /// True when gradients() are shards (norms must be summed across ranks).
  virtual bool sharded() const = 0;
  /// The consumer takes gradients in the parameters' dtype, one tensor per parameter (an optimizer that
  /// up-casts 16-bit gradients as it reads them): where nothing is accumulated or reduced, the reducer may then
  /// keep autograd's gradients as they are instead of converting them into its buffer. Local; set before a
  /// backward.
  virtual void allow_gradients_as_they_are(bool on) {}
  /// After the boundary's finish_backward(): when this window's gradients were kept as they are, per group the
  /// gradient of each parameter (autograd's tensor, or a view of the accumulation buffer where it was not
  /// kept; averaged like gradients()); empty otherwise, and then gradients() holds them.
  virtual std::vector<std::vector<at::Tensor>> gradients_as_they_are() { return {}; }
};

class BucketReducer : public GradientReducer {
 public:
  /// Installs the hooks on the groups' parameters (the groups must outlive the reducer). Local.
  BucketReducer(std::vector<FlatGroup*> groups, std::shared_ptr<comm::Communicator> comm, ReducerOptions options,
                Placement placement);
  ~BucketReducer() override;

  void prepare_backward(bool boundary) override;
  void finish_backward() override;
  void zero_grad() override;
  std::vector<at::Tensor> gradients() override;
  /// kAllReduce on one rank without averaging, in a window of one micro-step (GAS 1): each 16-bit gradient
  /// autograd hands over is kept, not converted into the fp32 buffer (6 bytes per element written and read
  /// per step, and a 4-byte read by the optimizer, saved; the buffer itself is only allocated once needed).
  /// The values are the same: the conversion is exact.
  void allow_gradients_as_they_are(bool on) override { as_they_are_allowed_ = on; }
  std::vector<std::vector<at::Tensor>> gradients_as_they_are() override;
  /// Per FlatGroup, the averaged gradient pieced as the Placement decided: the shard, or for kAllReduce the
  /// full flat buffer as one piece.
  std::vector<ShardBuffer> shards() const;
  bool sharded() const override { return options_.reduction != Reduction::kAllReduce; }

  std::size_t num_buckets() const;
  /// Bytes of host memory its gradient shards and landing buffers hold (offload).
  std::int64_t host_bytes() const;
  /// Called (on autograd's thread) when every parameter of group g has its gradient in this backward; ZeRO-3
  /// releases the unit's weights there.
  void on_group_done(std::function<void(std::size_t)> callback) { group_done_ = std::move(callback); }
  /// Called from the parameter hooks (autograd's thread).
  void on_gradient_ready(std::size_t group, std::size_t index);

  /// Offload: ‖chunk‖² of every host chunk is computed with `squared_norm` on a thread of its own once the
  /// chunk holds the boundary's complete gradient, while backward and the next chunks' copies go on, instead
  /// of in a pass over the host gradients at step time. Set before the first backward.
  /// With `device_squared_sum` (CUDA; optim::device_squared_sum, bit-identical to `squared_norm` on the same
  /// elements), a chunk that lands as its device buffer's exact bytes takes its ‖chunk‖² there instead, on the
  /// copy stream before its copy: no host memory bandwidth spent, none taken from a CPU Adam pass beside it.
  void track_host_norms(std::function<double(const std::vector<at::Tensor>&)> squared_norm,
                        std::function<at::Tensor(const at::Tensor&)> device_squared_sum = {}) {
    squared_norm_ = std::move(squared_norm);
    device_squared_sum_ = std::move(device_squared_sum);
  }
  /// After the boundary's finish_backward(): the sum of ‖chunk‖² over group g's host chunks, summed in bucket
  /// order (the same value for any timing); nullopt when norms are not tracked or g has no host chunk.
  std::optional<double> host_squared_norm(std::size_t group) const;
  /// Bucket b's chunk of group g's gradient shard (its host chunk under offload).
  at::Tensor shard_chunk(std::size_t group, std::size_t bucket) const;
  /// Offload: called once bucket b of group g holds the boundary's complete gradient on the host (its
  /// accumulation window closed), in landing order: on the landing thread, or, when norms are tracked, on the
  /// norm thread after the chunk's norm. Set before the first backward.
  void on_host_chunk_final(std::function<void(std::size_t, std::size_t)> callback) { chunk_final_ = std::move(callback); }
  /// Offload: the cap on send buffers bound for the host (landing_lead_bytes, or two of the largest host
  /// buckets), the most bytes of them held at once so far, and how often backward waited for a landing.
  /// 0 without offload.
  std::int64_t landing_cap_bytes() const;
  std::int64_t peak_landing_bytes() const;
  std::int64_t landing_waits() const;

 private:
  struct GroupState;
  struct Shared;
  void attach_gradient_views();
  void launch_ready_locked();
  void launch(std::size_t group, std::size_t bucket);
  /// Waits for a launched bucket and folds its result into the gradients (device chunks).
  void complete(std::size_t group, std::size_t bucket);
  /// The same for a chunk that lives on the host; runs on worker_.
  void land_on_host(std::size_t group, std::size_t bucket);
  void fold_into_shard(at::Tensor chunk, const at::Tensor& reduced) const;
  ShardBuffer new_shard(const FlatGroup& group) const;
  at::Tensor staging(std::size_t group, std::size_t bucket);
  /// Drops bucket b's send buffer and result once folded in or landed (returning its bytes to the budget).
  void release_send_buffer(std::size_t group, std::size_t bucket);
  /// Whether bucket b of group g goes to the host this micro-step.
  bool lands(std::size_t group, std::size_t bucket) const;
  /// Before allocating a send buffer of `dtype` for bucket b of group g: counts it against the landing lead
  /// when it lands, waiting for earlier landings if it must.
  void reserve_landing(std::size_t group, std::size_t bucket, at::ScalarType dtype);
  /// Whether host bucket chunks go to the host this micro-step (else they accumulate in the device window).
  bool lands_now() const { return !options_.accumulate_on_device || boundary_; }
  bool keeps_full_buffer() const { return options_.reduction != Reduction::kReduceScatterEachMicroStep; }
  /// Group g's full buffer, allocated (zeroed) on first use.
  at::Tensor& full(std::size_t g);
  /// Moves a gradient kept as it is into the full buffer (a later backward of the window adds to it).
  void fold_kept_gradient(std::size_t g, std::size_t i);

  std::shared_ptr<comm::Communicator> comm_;
  ReducerOptions options_;
  Placement placement_;
  Averaging averaging_;
  std::vector<FlatGroup*> groups_;
  std::vector<std::unique_ptr<GroupState>> state_;
  std::shared_ptr<Shared> shared_;  // what the hooks hold
  bool armed_ = false;
  std::size_t next_group_ = 0, next_bucket_ = 0;
  bool boundary_ = false;  // this backward closes an accumulation window
  bool as_they_are_allowed_ = false;
  bool as_they_are_ = false;            // this backward keeps gradients as they are
  std::size_t backwards_in_window_ = 0;  // since the last zero_grad()
  std::function<void(std::size_t)> group_done_;
  std::function<double(const std::vector<at::Tensor>&)> squared_norm_;
  std::function<at::Tensor(const at::Tensor&)> device_squared_sum_;
  std::function<void(std::size_t, std::size_t)> chunk_final_;
  std::optional<c10::Stream> copy_stream_;  // CUDA: where host-bound chunks are copied
  std::unique_ptr<SerialWorker> worker_;       // offload only: the landing thread
  std::unique_ptr<SerialWorker> norm_worker_;  // offload with tracked norms: ‖chunk‖² off the landing thread
  std::unique_ptr<LandingBudget> landing_budget_;  // offload only
};

class NaiveAllReduce : public GradientReducer {
 public:
  NaiveAllReduce(std::vector<at::Tensor> params, std::shared_ptr<comm::Communicator> comm, ReducerOptions options);
  void prepare_backward(bool boundary) override { armed_ = boundary; }
  void finish_backward() override;
  void zero_grad() override;
  std::vector<at::Tensor> gradients() override;
  bool sharded() const override { return false; }

 private:
  std::vector<at::Tensor> params_;
  std::shared_ptr<comm::Communicator> comm_;
  ReducerOptions options_;
  bool armed_ = false;
};

}  // namespace deepspeed::zero
