#pragma once
/// \file
/// Gradient reduction across data-parallel ranks, overlapped with backward, for ZeRO stages 0–2.
///
/// Gradients land in the FlatGroups' bucket layout. A post-accumulate-grad hook on every parameter counts it
/// in as autograd finishes it; a bucket whose gradients are all in is reduced while backward computes the
/// rest. Buckets are launched strictly in layout order, so all ranks issue the same collectives in the same
/// order however autograd schedules its work. finish_backward() launches what is left (parameters unused in
/// this backward included), waits, and applies DeepSpeed's averaging (gradient_predivide_factor /
/// prescale_gradients).
///
///   stage 0  full gradients in `accum_dtype`, all-reduced on the accumulation boundary
///   stage 1  full gradients accumulated locally; on the boundary each bucket is reduce-scattered and this
///            rank keeps its chunk in the gradient shard
///   stage 2  no full gradient buffer: each micro-step every bucket is staged, reduce-scattered, and its
///            chunk added into the shard (DeepSpeed's every-micro-step reduction)
///   stage 3  as stage 2, over the ZeRO-3 units' groups
///
/// When parameters' dtype equals `accum_dtype` (stages 0–1), their .grad() are views into the flat gradient
/// buffer and autograd accumulates in place; otherwise the hook adds each .grad() into the buffer and frees
/// it. NaiveAllReduce is the stage-0 reference: one blocking all-reduce per parameter after backward.

#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include <ATen/core/Tensor.h>

#include "deepspeed/comm/communicator.h"
#include "deepspeed/zero/flat_group.h"

namespace deepspeed::zero {

/// DeepSpeed's averaging arithmetic (engine.allreduce_bucket): the factor applied before and after the sum.
struct Averaging {
  double before = 1.0;
  double after = 1.0;
  static Averaging deepspeed(int world_size, bool prescale_gradients, double predivide_factor);
};

struct ReducerOptions {
  int stage = 0;                                      ///< 0–3
  at::ScalarType accum_dtype = at::kFloat;            ///< full buffer (stages 0–1) and shard dtype
  std::optional<at::ScalarType> communication_dtype;  ///< nullopt: accum_dtype
  bool prescale_gradients = false;
  double gradient_predivide_factor = 1.0;
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
  /// Per FlatGroup, after the boundary's finish_backward(): the averaged gradients this rank owns —
  /// the full flat buffer (stage 0, or per-parameter grads for the reference) or the shard (stages 1–2).
  virtual std::vector<at::Tensor> gradients() = 0;
  /// True when gradients() are shards (norms must be summed across ranks).
  virtual bool sharded() const = 0;
};

class BucketReducer : public GradientReducer {
 public:
  BucketReducer(std::vector<FlatGroup*> groups, std::shared_ptr<comm::Communicator> comm, ReducerOptions options);
  ~BucketReducer() override;

  void prepare_backward(bool boundary) override;
  void finish_backward() override;
  void zero_grad() override;
  std::vector<at::Tensor> gradients() override;
  bool sharded() const override { return options_.stage > 0; }

  std::size_t num_buckets() const;
  /// Called (on autograd's thread) when every parameter of group g has its gradient in this backward; ZeRO-3
  /// releases the unit's weights there.
  void on_group_done(std::function<void(std::size_t)> callback) { group_done_ = std::move(callback); }
  /// Called from the parameter hooks (autograd's thread).
  void on_gradient_ready(std::size_t group, std::size_t index);

 private:
  struct GroupState;
  struct Shared;
  void attach_gradient_views();
  void launch_ready_locked();
  void launch(std::size_t group, std::size_t bucket);
  /// Waits for a launched bucket and folds its result into the gradients.
  void complete(std::size_t group, std::size_t bucket);
  at::Tensor staging(std::size_t group, std::size_t bucket);

  std::shared_ptr<comm::Communicator> comm_;
  ReducerOptions options_;
  Averaging averaging_;
  std::vector<FlatGroup*> groups_;
  std::vector<std::unique_ptr<GroupState>> state_;
  std::shared_ptr<Shared> shared_;  // what the hooks hold
  bool armed_ = false;
  std::size_t next_group_ = 0, next_bucket_ = 0;
  std::function<void(std::size_t)> group_done_;
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
