#pragma once
// Internal: the engine's state and the orchestration of forward/backward/step. Each feature lives in its own
// component — the ZeRO layout (zero::Strategy: flat buffers, gradient reduction, master weights, partitioned
// parameters), the loss scaler, the optimizer, the LR schedule, the timers; this class only sequences them.
#include <memory>
#include <optional>
#include <vector>

#include <c10/core/Event.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>

#include "deepspeed/checkpoint/state.h"
#include "deepspeed/comm/communicator.h"
#include "deepspeed/config/config.h"
#include "deepspeed/engine/timers.h"
#include "deepspeed/monitor/monitor.h"
#include "deepspeed/optim/lr_schedules.h"
#include "deepspeed/optim/optimizer.h"
#include "deepspeed/precision/loss_scaler.h"
#include "deepspeed/zero/strategy.h"
#include "src/engine/flops_profile_step.h"
#include "src/engine/step_report.h"
#include "src/engine/training_monitor.h"

namespace deepspeed {

/// What initialize() hands the engine.
struct EngineParts {
  config::Config config;
  std::shared_ptr<comm::Communicator> comm;
  torch::nn::AnyModule any_module;
  std::shared_ptr<torch::nn::Module> module;
  at::ScalarType model_dtype = at::kFloat;
  std::unique_ptr<zero::Strategy> zero;
  std::shared_ptr<optim::Optimizer> optimizer;
  std::shared_ptr<optim::LRScheduler> scheduler;
  bool has_dataloader = false;
  monitor::Monitor monitor;  ///< rank 0's sinks (empty elsewhere)
};

/// Progress counters, as DeepSpeed's engine keeps them (checkpointed).
struct StepCounters {
  std::int64_t global_steps = 0;
  std::int64_t global_samples = 0;
  std::int64_t micro_steps = 0;
  std::int64_t skipped_steps = 0;
};

class EngineImpl {
 public:
  explicit EngineImpl(EngineParts parts);
  ~EngineImpl();

  void begin_forward();
  void end_forward();
  /// Float32 tensor arguments are cast to the model's dtype under fp16/bf16.
  at::Tensor cast_input(const at::Tensor& x) const;
  at::Tensor backward(const at::Tensor& loss, bool retain_graph, bool scale_wrt_gas);
  void step();
  bool is_boundary() const;
  void set_boundary_override(bool boundary) { boundary_override_ = boundary; }

  /// Called by the data loader each time it yields a micro-batch (DeepSpeed starts its throughput timer there).
  void on_batch_fetched() { throughput_.start(); }
  void report_progress(std::int64_t step);
  /// The run's length in optimizer steps, for the progress fields of the step lines.
  void set_total_steps(std::optional<std::int64_t> total) { progress_.set_total_steps(total); }
  engine::TrainingMonitor& training_monitor() { return monitor_; }
  /// Rank 0's flops profiler (nullptr when disabled or on other ranks).
  profiling::FlopsProfiler* flops_profiler() const { return flops_profile_.profiler(); }
  void log_comms_summary();

  const config::Config& config() const { return parts_.config; }
  comm::Communicator& comm() const { return *parts_.comm; }
  const std::shared_ptr<comm::Communicator>& comm_ptr() const { return parts_.comm; }
  torch::nn::AnyModule& any_module() { return parts_.any_module; }
  const std::shared_ptr<torch::nn::Module>& module() const { return parts_.module; }
  zero::Strategy& zero() const { return *parts_.zero; }
  optim::Optimizer& optimizer() const { return *parts_.optimizer; }
  const precision::LossScaler& loss_scaler() const { return loss_scaler_; }
  const StepCounters& counters() const { return counters_; }
  /// The last step's gradient norm; a norm left on the device (prepare_gradients) is read here, when asked for.
  std::optional<double> global_grad_norm() const;
  bool step_applied() const { return step_applied_; }

  /// The parts save_checkpoint/load_checkpoint loop over, in order: module weights, ZeRO layout (fp32
  /// masters), optimizer state, loss scaler, LR schedule, counters. Loading in this order matters: the
  /// layout checks the checkpoint's stage before the optimizer state is read, and the masters follow the
  /// weights unless the checkpoint's own masters replace them.
  const std::vector<checkpoint::Stateful*>& checkpoint_parts() const { return checkpoint_parts_; }

 private:
  void take_model_step();
  /// Unscale, overflow check, clip. Returns false when the step must be skipped (fp16 overflow).
  bool prepare_gradients(const std::vector<at::Tensor>& grads);
  /// Without loss scaling, where the layout sums the norm on the device (not offloaded), the clipping factor is
  /// computed where the gradients are and handed to the optimizer as a device tensor: the host goes on
  /// launching the update instead of waiting for backward to read the norm. Returns false (nothing done, no
  /// collective) where that does not apply, or with DS_HOST_GRAD_NORM=1.
  bool clip_on_device(const std::vector<at::Tensor>& grads);
  /// The factor as a number: to the optimizer when it takes one, else multiplied into the gradients.
  void apply_gradient_coefficient(const std::vector<at::Tensor>& grads, double coefficient);

  EngineParts parts_;
  precision::LossScaler loss_scaler_;
  StepCounters counters_;
  std::optional<bool> boundary_override_;
  mutable std::optional<double> global_grad_norm_;
  mutable at::Tensor device_squared_norm_;  // the last step's ‖g‖², not yet read to the host
  mutable std::optional<c10::Event> device_norm_ready_;  // recorded where it was written (CUDA)
  double device_norm_scale_ = 1.0;          // the loss scale it is divided by
  at::Tensor device_factor_;                // the last step's clipping factor on the device (see clip_on_device)
  bool step_applied_ = false;
  engine::WallClockTimers timers_;
  engine::ThroughputTimer throughput_;
  engine::TrainingMonitor monitor_;
  engine::ProgressMeter progress_;
  engine::FlopsProfileStep flops_profile_;
  std::int64_t summarized_operations_ = 0;  // collectives in the last printed comms summary
  std::vector<std::unique_ptr<checkpoint::Stateful>> owned_parts_;  // the engine's own checkpoint parts
  std::vector<checkpoint::Stateful*> checkpoint_parts_;             // all of them, the layout too, in order
};

}  // namespace deepspeed
