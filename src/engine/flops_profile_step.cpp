#include "src/engine/flops_profile_step.h"

namespace deepspeed::engine {

FlopsProfileStep::FlopsProfileStep(const config::Config& config, std::shared_ptr<torch::nn::Module> model, int rank,
                                   c10::Device device)
    : device_(device), profile_step_(config.flops_profiler.profile_step) {
  if (config.flops_profiler.enabled && rank == 0) {
    profiler_ = std::make_unique<profiling::FlopsProfiler>(config.flops_profiler, std::move(model));
  }
}

void FlopsProfileStep::begin_forward(std::int64_t global_steps) {
  if (!profiler_ || done_ || global_steps != profile_step_) return;
  if (profiler_->started()) profiler_->stop();  // a forward whose end_forward never ran (it threw)
  profiler_->reset();
  synchronize_device(device_);
  forward_started_ = std::chrono::steady_clock::now();
  profiler_->start();
}

void FlopsProfileStep::end_forward() {
  if (!profiler_ || !profiler_->started()) return;
  profiler_->stop();
  synchronize_device(device_);
  fwd_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - forward_started_).count();
  profiled_ = true;
}

void FlopsProfileStep::after_boundary(std::int64_t global_steps, WallClockTimers& timers, std::int64_t world_size,
                                      std::int64_t micro_batch) {
  if (!profiler_ || done_ || !profiled_) return;
  done_ = true;
  profiling::FlopsProfiler::ReportContext context;
  context.step = global_steps;
  context.world_size = world_size;
  context.dp_size = world_size;
  context.batch_per_gpu = micro_batch;
  context.fwd_ms = fwd_ms_;
  context.bwd_ms = timers.elapsed_ms("bwd", /*reset=*/false);
  context.step_ms = timers.elapsed_ms("step", /*reset=*/false);
  profiler_->write_report(context);
}

}  // namespace deepspeed::engine
