#pragma once
/// \file
/// DeepSpeed's engine timers: named wall-clock timers for `wall_clock_breakdown`, and the throughput timer
/// behind the "RunningAvgSamplesPerSec" line. The named timers synchronize the device before reading the clock
/// (as DeepSpeed's SynchronizedWallClockTimer does) so GPU work is attributed to the phase that queued it; the
/// throughput timer times the device's work with events (below).

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <c10/core/Device.h>
#include <c10/core/Event.h>

namespace deepspeed::engine {

/// Blocks until all work queued on `device` is done (no-op on CPU).
void synchronize_device(c10::Device device);
/// Bytes currently / at most allocated by the CUDA caching allocator on `device` (0 on CPU).
std::int64_t memory_allocated(c10::Device device);
std::int64_t max_memory_allocated(c10::Device device);
/// Starts max_memory_allocated() over from what is allocated now (no-op on CPU).
void reset_max_memory_allocated(c10::Device device);

class WallClockTimers {
 public:
  WallClockTimers(c10::Device device, bool enabled) : device_(device), enabled_(enabled) {}
  bool enabled() const { return enabled_; }
  void start(const std::string& name);
  void stop(const std::string& name);
  /// Accumulated milliseconds since the last reset.
  double elapsed_ms(const std::string& name, bool reset = true);
  /// DeepSpeed's "time (ms) | name: 1.23 | ..." for those of `names` that ran; resets them.
  std::string log_line(const std::vector<std::string>& names);

 private:
  struct Timer {
    bool running = false;
    std::chrono::steady_clock::time_point started;
    double elapsed_ms = 0;
  };
  c10::Device device_;
  bool enabled_;
  std::map<std::string, Timer> timers_;
};

/// DeepSpeed's ThroughputTimer (utils/timer.py): timing starts once `start_step` optimizer steps have run;
/// every `steps_per_output` optimizer steps the report line is produced.
///
/// `synchronized` on a CUDA device (timers.throughput.synchronized, DeepSpeed's default): DeepSpeed
/// synchronizes the device at each micro-step's start and end so the clock spans the device's work. That
/// drains the launch queue twice a micro-step: the device idles while the host prepares the next batch and
/// launches its first kernels. Here each micro-step is timed between two CUDA events on the current stream
/// instead, the same span measured where it runs; the host waits only for the step a report line is due for.
/// Elsewhere (CPU ranks, synchronized false) the host clock as in DeepSpeed.
class ThroughputTimer {
 public:
  ThroughputTimer(c10::Device device, bool enabled, bool synchronized, std::int64_t batch_size,
                  std::optional<std::int64_t> steps_per_output, std::int64_t start_step = 2);
  void start();
  /// `global_step`: this call ends an optimizer step. Returns the report line when one is due and
  /// `report_speed` is set, else "".
  std::string stop(bool global_step, bool report_speed);
  void update_epoch_count();
  /// Waits for the micro-steps still timed on the device.
  double avg_samples_per_sec() const;

 private:
  /// A micro-step timed by CUDA events, not yet folded into the totals.
  struct DeviceSpan {
    c10::Event start, stop;
    std::int64_t global_step;  // the optimizer step the micro-step belongs to
  };
  /// Folds the completed spans in order (all of them when `wait`, blocking until the last has run).
  void fold_device_spans(bool wait) const;
  void add_duration(double seconds, std::int64_t global_step) const;

  c10::Device device_;
  bool enabled_, synchronized_;
  bool device_events_;  // synchronized on CUDA: timed by events
  std::int64_t batch_size_;
  std::optional<std::int64_t> steps_per_output_;
  std::int64_t start_step_;
  bool started_ = false;
  std::int64_t epoch_count_ = 0, micro_step_count_ = 0, global_step_count_ = 0;
  double start_time_ = 0;
  mutable double total_elapsed_ = 0, step_elapsed_ = 0;
  mutable std::int64_t step_elapsed_of_ = -1;  // the optimizer step step_elapsed_ sums
  std::optional<c10::Event> open_start_;       // device_events_: this micro-step's start
  mutable std::deque<DeviceSpan> device_spans_;
};

}  // namespace deepspeed::engine
