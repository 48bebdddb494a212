#pragma once
// Internal: the fields deepspeed.cpp appends to DeepSpeed's "step=…, skipped=…, lr=…, mom=…" line on rank 0.
//
//   , progress=120/1000 (12.0%), samples/sec=2048.5, eta=0:03:12   where the run's length is known
//   , MA=1.23 GB, Max_MA=2.5 GB, CA=3.0 GB, Max_CA=3.0 GB            memory_breakdown, CUDA device
//   , host_RSS=4.56 GB, pinned=0.75 GB                              memory_breakdown
// DeepSpeed prints its memory figures (see_memory_usage: MA/Max_MA/CA/Max_CA, rounded to 0.01 GB) as
// separate lines around every forward, backward and step; here they ride on the step line, once per
// steps_per_print, with the peaks measured since the previous line.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <c10/core/Device.h>

namespace deepspeed::engine {

/// "H:MM:SS" for a non-negative number of seconds (rounded down), hours unbounded. Pure.
std::string format_eta(double seconds);

/// ", progress=step/total (p%)" with p to one decimal (omitted without a total), then ", samples/sec=r" and
/// ", eta=…" when a rate is known (rate > 0). Pure.
std::string progress_fields(std::int64_t step, std::optional<std::int64_t> total_steps,
                            std::int64_t samples_per_step, double samples_per_sec);

/// The rate over the interval since the previous step line (initialize()'s step 0 starts the clock), so the
/// ETA follows the current speed rather than a start-up average.
class ProgressMeter {
 public:
  explicit ProgressMeter(std::int64_t samples_per_step) : samples_per_step_(samples_per_step) {}
  void set_total_steps(std::optional<std::int64_t> total) { total_ = total; }
  std::optional<std::int64_t> total_steps() const { return total_; }
  /// The progress fields for the line of optimizer step `step`.
  std::string fields(std::int64_t step);

 private:
  using Clock = std::chrono::steady_clock;
  std::int64_t samples_per_step_;
  std::optional<std::int64_t> total_;
  std::optional<std::pair<Clock::time_point, std::int64_t>> last_;  // (time, step) of the previous line
};

/// Resident set size of this process in bytes (/proc/self/statm; 0 where unavailable).
std::int64_t host_rss_bytes();

/// The memory_breakdown fields; resets the device's peak statistics so the next line shows its own window.
std::string memory_fields(c10::Device device);

}  // namespace deepspeed::engine
