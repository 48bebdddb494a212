#pragma once
// Internal: the engine's state and the orchestration of forward/backward/step. Each feature lives in its own
// component (flat groups, reducer, master weights, loss scaler, optimizer, scheduler, timers); this class
// only sequences them.
#include <memory>
#include <optional>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>

#include "deepspeed/comm/communicator.h"
#include "deepspeed/config/config.h"
#include "deepspeed/engine/timers.h"
#include "deepspeed/optim/lr_schedules.h"
#include "deepspeed/optim/optimizer.h"
#include "deepspeed/precision/loss_scaler.h"
#include "deepspeed/precision/master_params.h"
#include "deepspeed/zero/flat_group.h"
#include "deepspeed/zero/grad_reducer.h"
#include "deepspeed/zero/partitioned_params.h"

namespace deepspeed {

class EngineImpl {
 public:
  struct Parts {
    config::Config config;
    std::shared_ptr<comm::Communicator> comm;
    torch::nn::AnyModule any_module;
    std::shared_ptr<torch::nn::Module> module;
    at::ScalarType model_dtype = at::kFloat;
    std::vector<std::unique_ptr<zero::FlatGroup>> flat_groups;
    std::unique_ptr<zero::PartitionedParams> partitioned;
    std::unique_ptr<zero::GradientReducer> reducer;
    std::unique_ptr<precision::MasterParams> master;
    std::shared_ptr<optim::Optimizer> optimizer;
    std::shared_ptr<optim::LRScheduler> scheduler;
    bool has_dataloader = false;
    std::int64_t bucket_numel = 0;
  };
  explicit EngineImpl(Parts parts);

  void begin_forward();
  void end_forward();
  /// Float32 tensor arguments are cast to the model's dtype under fp16/bf16.
  at::Tensor cast_input(const at::Tensor& x) const;
  at::Tensor backward(const at::Tensor& loss, bool retain_graph, bool scale_wrt_gas);
  void step();
  bool is_boundary() const;

  /// Called by the data loader each time it yields a micro-batch (DeepSpeed starts its throughput timer there).
  void on_batch_fetched() { throughput_.start(); }

  void report_progress(std::int64_t step) const;
  /// The FlatGroups the master weights and optimizer state follow, in the reducer's order (ZeRO-3: the units').
  std::vector<zero::FlatGroup*> layout_groups() const;

  config::Config config;
  std::shared_ptr<comm::Communicator> comm;
  torch::nn::AnyModule any_module;
  std::shared_ptr<torch::nn::Module> module;
  at::ScalarType model_dtype;
  std::vector<std::unique_ptr<zero::FlatGroup>> flat_groups;
  std::unique_ptr<zero::PartitionedParams> partitioned;  ///< ZeRO-3 only; outlives reducer and master
  std::unique_ptr<zero::GradientReducer> reducer;
  std::unique_ptr<precision::MasterParams> master;
  std::shared_ptr<optim::Optimizer> optimizer;
  std::shared_ptr<optim::LRScheduler> scheduler;
  precision::LossScaler loss_scaler;
  std::int64_t bucket_numel = 0;  ///< the flat layout's bucket size (checkpoints record it)
  std::int64_t alignment = 16;

  std::int64_t global_steps = 0;
  std::int64_t global_samples = 0;
  std::int64_t micro_steps = 0;
  std::int64_t skipped_steps = 0;
  std::optional<bool> boundary_override;
  std::optional<double> global_grad_norm;
  bool step_applied = false;

 private:
  void take_model_step();
  /// Unscale, overflow check, clip. Returns false when the step must be skipped (fp16 overflow).
  bool prepare_gradients(const std::vector<at::Tensor>& grads);

  bool has_dataloader_;
  engine::WallClockTimers timers_;
  engine::ThroughputTimer throughput_;
};

/// Restores ZeRO stage 1–2 optimizer shards and masters from a checkpoint directory, re-cutting them when the
/// checkpoint was written by a different number of ranks (src/engine/checkpoint_zero.cpp).
void load_zero_shards(EngineImpl& engine, const std::string& dir);

}  // namespace deepspeed
