#include "src/zero/landing_budget.h"

#include <algorithm>

namespace deepspeed::zero {

void LandingBudget::open(std::int64_t bytes) {
  std::unique_lock<std::mutex> lock(mutex_);
  auto over = [&] { return pending_ > 0 && pending_ + bytes > cap_; };
  if (over()) {
    ++waits_;
    freed_.wait(lock, [&] { return !over(); });
  }
  live_ += bytes;
  peak_ = std::max(peak_, live_);
}

void LandingBudget::launched(std::int64_t bytes) {
  std::lock_guard<std::mutex> lock(mutex_);
  pending_ += bytes;
}

void LandingBudget::landed(std::int64_t bytes) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    pending_ -= bytes;
    live_ -= bytes;
  }
  freed_.notify_all();
}

std::int64_t LandingBudget::peak() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return peak_;
}

std::int64_t LandingBudget::waits() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return waits_;
}

}  // namespace deepspeed::zero
