#pragma once
// Internal: turns what the engine does into monitor events (DeepSpeed's summary_events), on rank 0 only.
//
// The events of one optimizer step share one x value, the samples seen after it (global_samples), as
// DeepSpeed keys them:
//   Train/Samples/train_loss   the mean of the losses engine.backward() received in the accumulation window
//                              (rank 0's, unscaled; DeepSpeed's pipeline engine logs the same quantity)
//   Train/Samples/lr           parameter group 0's learning rate after the step
//   Train/Samples/loss_scale   fp16 only: the loss scale after the step
//   Train/Samples/elapsed_time_ms_{forward,backward,backward_inner,backward_allreduce,step}
//                              with wall_clock_breakdown: the window's global timers, read before they reset
// When no sink is enabled every call returns at its first test, so a run without monitors pays nothing.
#include <cstdint>
#include <optional>

#include <ATen/core/Tensor.h>

#include "deepspeed/config/config.h"
#include "deepspeed/engine/timers.h"
#include "deepspeed/monitor/monitor.h"

namespace deepspeed::engine {

class TrainingMonitor {
 public:
  TrainingMonitor(monitor::Monitor sinks, bool timer_events)
      : sinks_(std::move(sinks)), timer_events_(timer_events) {}

  bool enabled() const { return sinks_.enabled(); }
  monitor::Monitor& sinks() { return sinks_; }

  /// Each engine.backward(): the loss it received. Summed on the loss's device; read once per window.
  void on_backward(const at::Tensor& loss);
  /// After an optimizer step (applied or skipped) has advanced the counters: the step's events.
  void on_model_step(std::int64_t global_samples, double lr, std::optional<double> loss_scale);
  /// At the accumulation boundary, before the global timers' log line resets them.
  void on_boundary_timers(WallClockTimers& timers, std::int64_t global_samples);

 private:
  monitor::Monitor sinks_;
  bool timer_events_;
  at::Tensor window_loss_sum_;
  std::int64_t window_losses_ = 0;
};

}  // namespace deepspeed::engine
