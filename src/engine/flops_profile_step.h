#pragma once
// Internal: when and how the engine runs the flops profiler (DeepSpeed's engine.py rules, rank 0 only).
//
// The profiled step is the one during which global_steps == flops_profiler.profile_step (DeepSpeed's test:
// with the default 1 the second optimizer step, after a warm-up step). Each forward of that step restarts
// the count, so the profile is one micro-batch's forward, as in DeepSpeed. At the step's accumulation boundary
// the report is written once, headed with the step number after the update (DeepSpeed's print_model_profile
// argument); DeepSpeed prints it at every micro-step of the window. fwd latency is the profiled forward's own
// time (device synchronised around it), bwd and step latency the window's engine timers (always on with the
// profiler, as DeepSpeed times for it).
#include <chrono>
#include <cstdint>
#include <memory>

#include <c10/core/Device.h>
#include <torch/nn/module.h>

#include "deepspeed/config/config.h"
#include "deepspeed/engine/timers.h"
#include "deepspeed/profiling/flops_profiler.h"

namespace deepspeed::engine {

class FlopsProfileStep {
 public:
  /// Enabled only when the config enables the profiler and `rank` is 0.
  FlopsProfileStep(const config::Config& config, std::shared_ptr<torch::nn::Module> model, int rank,
                   c10::Device device);

  void begin_forward(std::int64_t global_steps);
  void end_forward();
  /// At the accumulation boundary, after the optimizer step advanced global_steps to `global_steps` and before
  /// the timers' log line resets them.
  void after_boundary(std::int64_t global_steps, WallClockTimers& timers, std::int64_t world_size,
                      std::int64_t micro_batch);

  profiling::FlopsProfiler* profiler() const { return profiler_.get(); }

 private:
  std::unique_ptr<profiling::FlopsProfiler> profiler_;
  c10::Device device_;
  std::int64_t profile_step_ = 0;
  bool profiled_ = false;  // a forward of the profile step was counted
  bool done_ = false;
  double fwd_ms_ = 0;
  std::chrono::steady_clock::time_point forward_started_;
};

}  // namespace deepspeed::engine
