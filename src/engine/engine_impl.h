#pragma once
// Internal: the engine's state and the orchestration of forward/backward/step. Each feature lives in its own
// component (reducer, optimizer, scheduler, timers); this class only sequences them.
#include <memory>
#include <optional>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>

#include "deepspeed/comm/communicator.h"
#include "deepspeed/config/config.h"
#include "deepspeed/engine/timers.h"
#include "deepspeed/optim/lr_schedules.h"
#include "deepspeed/optim/optimizer.h"
#include "deepspeed/zero/grad_allreduce.h"

namespace deepspeed {

class EngineImpl {
 public:
  struct Parts {
    config::Config config;
    std::shared_ptr<comm::Communicator> comm;
    torch::nn::AnyModule any_module;
    std::shared_ptr<torch::nn::Module> module;
    std::vector<at::Tensor> trainable;  ///< parameters the optimizer updates (requires_grad)
    std::shared_ptr<optim::Optimizer> optimizer;
    std::shared_ptr<optim::LRScheduler> scheduler;
    std::unique_ptr<zero::GradientReducer> reducer;
    bool has_dataloader = false;
  };
  explicit EngineImpl(Parts parts);

  void begin_forward();
  void end_forward();
  at::Tensor backward(const at::Tensor& loss, bool retain_graph, bool scale_wrt_gas);
  void step();
  bool is_boundary() const;

  /// Called by the data loader each time it yields a micro-batch (DeepSpeed starts its throughput timer there).
  void on_batch_fetched() { throughput_.start(); }
  void on_epoch_end() { throughput_.update_epoch_count(); }

  void report_progress(std::int64_t step) const;

  config::Config config;
  std::shared_ptr<comm::Communicator> comm;
  torch::nn::AnyModule any_module;
  std::shared_ptr<torch::nn::Module> module;
  std::vector<at::Tensor> trainable;
  std::shared_ptr<optim::Optimizer> optimizer;
  std::shared_ptr<optim::LRScheduler> scheduler;
  std::unique_ptr<zero::GradientReducer> reducer;

  std::int64_t global_steps = 0;
  std::int64_t global_samples = 0;
  std::int64_t micro_steps = 0;
  std::int64_t skipped_steps = 0;
  std::optional<bool> boundary_override;
  std::optional<double> global_grad_norm;
  bool step_applied = false;

 private:
  void take_model_step();

  bool has_dataloader_;
  engine::WallClockTimers timers_;
  engine::ThroughputTimer throughput_;
};

}  // namespace deepspeed
