// LRRangeTest: DeepSpeed's learning-rate range test schedule.
#include <cmath>

#include "deepspeed/util/strings.h"
#include "src/optim/lr_schedules_internal.h"

namespace deepspeed::optim::detail {

using util::cat;

namespace {

/// lr = min_lr * (1 + step_rate * interval), interval = (t + 1) / step_size, floored when staircase.
class LRRangeTest final : public LRScheduler {
 public:
  LRRangeTest(ScheduleTarget& target, std::vector<double> min_lrs, std::int64_t step_size, double step_rate,
              bool staircase, std::int64_t last_batch_iteration)
      : LRScheduler(target, last_batch_iteration),
        min_lrs_(std::move(min_lrs)),
        step_size_(step_size),
        step_rate_(step_rate),
        staircase_(staircase) {
    if (last_batch_iteration == -1) write_lrs(min_lrs_);
  }

  std::string name() const override { return "LRRangeTest"; }

  std::vector<double> get_lr() const override {
    double interval = static_cast<double>(last_batch_iteration_ + 1) / static_cast<double>(step_size_);
    if (staircase_) interval = std::floor(interval);
    const double increase = 1 + step_rate_ * interval;
    std::vector<double> lrs(min_lrs_.size());
    for (std::size_t g = 0; g < lrs.size(); ++g) lrs[g] = min_lrs_[g] * increase;
    return lrs;
  }

 private:
  std::vector<double> min_lrs_;
  std::int64_t step_size_;
  double step_rate_;
  bool staircase_;
};

}  // namespace

std::unique_ptr<LRScheduler> make_lr_range_test(const config::SchedulerConfig& c, ScheduleTarget& target,
                                                std::string_view source) {
  if (c.lr_range_test_step_size <= 0) {
    fail(source, "lr_range_test_step_size", cat("must be a positive integer, got ", c.lr_range_test_step_size));
  }
  return std::make_unique<LRRangeTest>(
      target, per_group(c.lr_range_test_min_lr, target.num_groups(), "lr_range_test_min_lr", source),
      c.lr_range_test_step_size, c.lr_range_test_step_rate, c.lr_range_test_staircase, c.last_batch_iteration);
}

}  // namespace deepspeed::optim::detail
