#include "src/zero/step_speculation.h"

#include <algorithm>

namespace deepspeed::zero {

std::int64_t speculation_backup_numel(std::int64_t host_numel) { return (host_numel + 3) / 4; }

StepSpeculation::StepSpeculation(std::int64_t backup_numel)
    // Not value-initialised: untouched pages cost nothing until a speculation writes them.
    : capacity_(backup_numel), backup_(new float[static_cast<std::size_t>(3 * std::max<std::int64_t>(backup_numel, 1))]) {}

bool StepSpeculation::begin_step() {
  const std::lock_guard lock(mutex_);
  used_ = 0;
  verdict_.reset();
  speculating_ = last_was_one_;
  abandoned_ = false;
  speculated_.clear();
  return speculating_;
}

StepSpeculation::Ticket StepSpeculation::next(std::size_t group, std::size_t bucket, std::int64_t begin,
                                              std::int64_t numel) {
  std::unique_lock lock(mutex_);
  decided_.wait(lock, [&] { return verdict_ || abandoned_ || (speculating_ && used_ < capacity_); });
  if (abandoned_) return Ticket{0, nullptr, 1.0f, true};
  if (verdict_) return Ticket{numel, nullptr, *verdict_, false};
  const std::int64_t take = std::min({numel, capacity_ - used_, kSpeculationSlice});
  float* backup = backup_.get() + 3 * used_;
  used_ += take;
  if (speculated_.empty()) ++speculated_steps_;
  speculated_.push_back(Speculated{group, bucket, begin, take, backup});
  return Ticket{take, backup, 1.0f, false};
}

std::vector<StepSpeculation::Speculated> StepSpeculation::decide(float scale) {
  std::vector<Speculated> redo;
  {
    const std::lock_guard lock(mutex_);
    verdict_ = scale;
    last_was_one_ = scale == 1.0f;
    if (scale != 1.0f && !speculated_.empty()) {
      redo = speculated_;
      ++rolled_back_steps_;
    }
  }
  decided_.notify_all();
  return redo;
}

void StepSpeculation::abandon() {
  {
    const std::lock_guard lock(mutex_);
    abandoned_ = true;
  }
  decided_.notify_all();
}

std::int64_t StepSpeculation::speculated_steps() const {
  const std::lock_guard lock(mutex_);
  return speculated_steps_;
}

std::int64_t StepSpeculation::rolled_back_steps() const {
  const std::lock_guard lock(mutex_);
  return rolled_back_steps_;
}

}  // namespace deepspeed::zero
