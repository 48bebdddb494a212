#include "src/engine/training_monitor.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

namespace deepspeed::engine {

void TrainingMonitor::on_backward(const at::Tensor& loss) {
  if (!enabled() || !loss.defined()) return;
  at::NoGradGuard no_grad;
  // fp32 so that a 16-bit loss summed over a long window keeps its digits; no host sync until the boundary.
  at::Tensor value = loss.detach().to(at::kFloat).mean();
  window_loss_sum_ = window_losses_ == 0 ? value : window_loss_sum_ + value;
  ++window_losses_;
}

void TrainingMonitor::on_model_step(std::int64_t global_samples, double lr, std::optional<double> loss_scale) {
  if (!enabled()) return;
  std::vector<monitor::Event> events;
  if (window_losses_ > 0) {
    events.push_back({"Train/Samples/train_loss",
                      window_loss_sum_.item<double>() / static_cast<double>(window_losses_), global_samples});
  }
  window_loss_sum_ = at::Tensor();
  window_losses_ = 0;
  events.push_back({"Train/Samples/lr", lr, global_samples});
  if (loss_scale) events.push_back({"Train/Samples/loss_scale", *loss_scale, global_samples});
  sinks_.write(events);
}

void TrainingMonitor::on_boundary_timers(WallClockTimers& timers, std::int64_t global_samples) {
  if (!enabled() || !timer_events_ || !timers.enabled()) return;
  static const std::pair<const char*, const char*> kTimers[] = {
      {"Train/Samples/elapsed_time_ms_forward", "fwd"},
      {"Train/Samples/elapsed_time_ms_backward", "bwd"},
      {"Train/Samples/elapsed_time_ms_backward_inner", "bwd_inner"},
      {"Train/Samples/elapsed_time_ms_backward_allreduce", "bwd_allreduce"},
      {"Train/Samples/elapsed_time_ms_step", "step"}};
  std::vector<monitor::Event> events;
  for (const auto& [event, timer] : kTimers) {
    events.push_back({event, timers.elapsed_ms(timer, /*reset=*/false), global_samples});
  }
  sinks_.write(events);
}

}  // namespace deepspeed::engine
