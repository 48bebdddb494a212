#pragma once
/// \file
/// Data-parallel gradient averaging for ZeRO stage 0 (plain data parallelism).
///
/// BucketedAllReduce: every trainable parameter's .grad() is a view into one flat buffer per (dtype, device),
/// laid out in reverse registration order (≈ the order backward produces gradients) and cut into buckets. On
/// the micro-step that ends an accumulation window, a post-accumulate-grad hook on each parameter counts it in;
/// a bucket whose gradients are all accumulated is all-reduced while backward goes on computing the rest.
/// Buckets are launched strictly in order so every rank issues the same collectives in the same order even if
/// autograd visits parameters differently. finish_backward() launches what is left (unused parameters
/// included), waits, and applies DeepSpeed's averaging (gradient_predivide_factor / prescale_gradients).
///
/// NaiveAllReduce: the reference — after backward, one blocking all-reduce per parameter. Tests compare them.

#include <memory>
#include <optional>
#include <vector>

#include <ATen/core/Tensor.h>

#include "deepspeed/comm/communicator.h"
#include "deepspeed/zero/bucket_plan.h"

namespace deepspeed::zero {

/// DeepSpeed's averaging arithmetic (engine.allreduce_bucket): the factor applied before and after the sum.
struct Averaging {
  double before = 1.0;
  double after = 1.0;
  static Averaging deepspeed(int world_size, bool prescale_gradients, double predivide_factor);
};

struct ReducerOptions {
  std::int64_t bucket_numel = 1 << 23;
  bool prescale_gradients = false;
  double gradient_predivide_factor = 1.0;
  std::optional<at::ScalarType> communication_dtype;  ///< nullopt: the gradient's dtype
};

/// Interface the engine drives; both implementations give the same result.
class GradientReducer {
 public:
  virtual ~GradientReducer() = default;
  /// Before autograd. `reduce` is true on the accumulation boundary: gradients are averaged in this backward.
  virtual void prepare_backward(bool reduce) = 0;
  /// After autograd returns: completes the reduction (if armed). All ranks must call it.
  virtual void finish_backward() = 0;
  /// Zeroes all gradients in place.
  virtual void zero_grad() = 0;
  /// Gradient storage to compute norms on (flat buffers, or per-parameter grads).
  virtual std::vector<at::Tensor> gradient_tensors() = 0;
};

class BucketedAllReduce : public GradientReducer {
 public:
  BucketedAllReduce(std::vector<at::Tensor> params, std::shared_ptr<comm::Communicator> comm, ReducerOptions options);
  ~BucketedAllReduce() override;

  void prepare_backward(bool reduce) override;
  void finish_backward() override;
  void zero_grad() override;
  std::vector<at::Tensor> gradient_tensors() override;

  std::size_t num_buckets() const;

  // Called from the parameter hooks (autograd's thread).
  void on_gradient_ready(std::size_t group, std::size_t index);

 private:
  struct FlatGroup;
  struct Shared;
  void launch_ready_buckets_locked();
  void launch_bucket(FlatGroup& group, std::size_t bucket);
  void attach_gradient_views();

  std::shared_ptr<comm::Communicator> comm_;
  ReducerOptions options_;
  Averaging averaging_;
  std::vector<std::unique_ptr<FlatGroup>> groups_;
  std::shared_ptr<Shared> shared_;  // what the hooks hold; outlives the reducer safely
  bool armed_ = false;
  std::size_t next_group_ = 0;   // launch cursor (group, bucket) in global order
  std::size_t next_bucket_ = 0;
};

class NaiveAllReduce : public GradientReducer {
 public:
  NaiveAllReduce(std::vector<at::Tensor> params, std::shared_ptr<comm::Communicator> comm, ReducerOptions options);
  void prepare_backward(bool reduce) override { armed_ = reduce; }
  void finish_backward() override;
  void zero_grad() override;
  std::vector<at::Tensor> gradient_tensors() override;

 private:
  std::vector<at::Tensor> params_;
  std::shared_ptr<comm::Communicator> comm_;
  ReducerOptions options_;
  bool armed_ = false;
};

}  // namespace deepspeed::zero
