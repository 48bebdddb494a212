#include "deepspeed/engine/timers.h"

#include <cmath>
#include <cstdio>
#include <limits>

#include <c10/core/impl/VirtualGuardImpl.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>

#include "deepspeed/util/strings.h"

namespace deepspeed::engine {

using util::cat;

namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string gigabytes(std::int64_t bytes) {
  // Python's round(x / 1024**3, 2)
  return util::py_float(std::round(static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0) * 100.0) / 100.0);
}

}  // namespace

void synchronize_device(c10::Device device) {
  if (device.is_cuda()) c10::cuda::device_synchronize();
}

std::int64_t memory_allocated(c10::Device device) {
  if (!device.is_cuda()) return 0;
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
  return stats.allocated_bytes[static_cast<std::size_t>(c10::CachingAllocator::StatType::AGGREGATE)].current;
}

std::int64_t max_memory_allocated(c10::Device device) {
  if (!device.is_cuda()) return 0;
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
  return stats.allocated_bytes[static_cast<std::size_t>(c10::CachingAllocator::StatType::AGGREGATE)].peak;
}

void reset_max_memory_allocated(c10::Device device) {
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device.index());
}

void WallClockTimers::start(const std::string& name) {
  if (!enabled_) return;
  auto& t = timers_[name];
  if (t.running) return;
  synchronize_device(device_);
  t.running = true;
  t.started = std::chrono::steady_clock::now();
}

void WallClockTimers::stop(const std::string& name) {
  if (!enabled_) return;
  auto& t = timers_[name];
  if (!t.running) return;
  synchronize_device(device_);
  t.elapsed_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t.started).count();
  t.running = false;
}

double WallClockTimers::elapsed_ms(const std::string& name, bool reset) {
  auto it = timers_.find(name);
  if (it == timers_.end()) return 0.0;
  const bool was_running = it->second.running;
  if (was_running) stop(name);
  const double value = it->second.elapsed_ms;
  if (reset) it->second.elapsed_ms = 0;
  if (was_running) start(name);
  return value;
}

std::string WallClockTimers::log_line(const std::vector<std::string>& names) {
  std::string line = "time (ms)";
  for (const auto& name : names) {
    if (!timers_.count(name)) continue;
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%.2f", elapsed_ms(name));
    line += cat(" | ", name, ": ", buffer);
  }
  return line;
}

ThroughputTimer::ThroughputTimer(c10::Device device, bool enabled, bool synchronized, std::int64_t batch_size,
                                 std::optional<std::int64_t> steps_per_output, std::int64_t start_step)
    : device_(device), enabled_(enabled), synchronized_(synchronized), device_events_(synchronized && device.is_cuda()),
      batch_size_(batch_size), steps_per_output_(steps_per_output), start_step_(start_step) {}

void ThroughputTimer::update_epoch_count() {
  ++epoch_count_;
  micro_step_count_ = 0;
}

void ThroughputTimer::start() {
  if (!enabled_) return;
  started_ = true;
  if (global_step_count_ < start_step_) return;
  if (device_events_) {
    c10::Event event(device_.type(), c10::EventFlag::BACKEND_DEFAULT);  // timing enabled
    event.record(c10::impl::VirtualGuardImpl(device_.type()).getStream(device_));
    open_start_ = std::move(event);
    return;
  }
  if (synchronized_) synchronize_device(device_);
  start_time_ = now_seconds();
}

void ThroughputTimer::add_duration(double seconds, std::int64_t global_step) const {
  total_elapsed_ += seconds;
  if (step_elapsed_of_ != global_step) step_elapsed_ = 0;
  step_elapsed_of_ = global_step;
  step_elapsed_ += seconds;
}

void ThroughputTimer::fold_device_spans(bool wait) const {
  while (!device_spans_.empty()) {
    DeviceSpan& span = device_spans_.front();
    if (wait) {
      span.start.synchronize();  // the same stream as stop unless the caller switched streams in between
      span.stop.synchronize();
    } else if (!span.stop.query() || !span.start.query()) {
      return;
    }
    add_duration(span.start.elapsedTime(span.stop) / 1e3, span.global_step);
    device_spans_.pop_front();
  }
}

std::string ThroughputTimer::stop(bool global_step, bool report_speed) {
  if (!enabled_ || !started_) return "";
  started_ = false;
  const std::int64_t this_step = global_step_count_;
  ++micro_step_count_;
  if (global_step) ++global_step_count_;
  if (device_events_) {
    if (!open_start_) return "";
    c10::Event stop(device_.type(), c10::EventFlag::BACKEND_DEFAULT);
    stop.record(c10::impl::VirtualGuardImpl(device_.type()).getStream(device_));
    device_spans_.push_back(DeviceSpan{std::move(*open_start_), std::move(stop), this_step});
    open_start_.reset();
  } else {
    if (start_time_ <= 0) return "";
    if (synchronized_) synchronize_device(device_);
    add_duration(now_seconds() - start_time_, this_step);
  }
  if (!global_step) return "";
  const bool due = report_speed && steps_per_output_ && global_step_count_ % *steps_per_output_ == 0;
  // Spans whose events have run are folded as they come, so the queue stays short without waiting.
  fold_device_spans(/*wait=*/due);
  if (!due) return "";
  constexpr double kTimeEpsilon = 1e-6;  // DeepSpeed's TIME_EPSILON
  const double this_step_elapsed = step_elapsed_of_ == this_step ? step_elapsed_ : 0.0;
  return cat("epoch=", epoch_count_, "/micro_step=", micro_step_count_, "/global_step=", global_step_count_,
             ", RunningAvgSamplesPerSec=", util::py_float(avg_samples_per_sec()),
             ", CurrSamplesPerSec=", util::py_float(batch_size_ / (this_step_elapsed + kTimeEpsilon)),
             ", MemAllocated=", gigabytes(memory_allocated(device_)),
             "GB, MaxMemAllocated=", gigabytes(max_memory_allocated(device_)), "GB");
}

double ThroughputTimer::avg_samples_per_sec() const {
  fold_device_spans(/*wait=*/true);
  if (global_step_count_ <= 0) return -std::numeric_limits<double>::infinity();
  const double steps = static_cast<double>(global_step_count_ - start_step_);
  return batch_size_ / (total_elapsed_ / steps);
}

}  // namespace deepspeed::engine
