// OneCycle: one triangular cycle of the lr (β1 moving the opposite way), then an optional decay phase.
// Sizes are doubles because DeepSpeed converts the step sizes to float before any arithmetic; the cycle
// position uses Python's float `%` and floor so the staircase boundaries land exactly where DeepSpeed's do.
#include <cmath>

#include "deepspeed/util/logging.h"
#include "deepspeed/util/strings.h"
#include "src/optim/lr_schedules_internal.h"

namespace deepspeed::optim::detail {

using util::cat;

namespace {

// Python's float modulo: the result takes the divisor's sign (C's fmod takes the dividend's).
double py_mod(double a, double b) {
  double r = std::fmod(a, b);
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}

struct CycleShape {
  double first_step_size;
  double second_step_size;
  std::int64_t first_stair_count;
  std::int64_t second_stair_count;
  std::int64_t decay_step_size;
};

class OneCycle final : public LRScheduler {
 public:
  OneCycle(ScheduleTarget& target, CycleShape shape, std::vector<double> min_lrs, std::vector<double> max_lrs,
           double decay_lr_rate, bool cycle_momentum, std::vector<double> min_moms, std::vector<double> max_moms,
           double decay_mom_rate, std::int64_t last_batch_iteration)
      : LRScheduler(target, last_batch_iteration),
        shape_(shape),
        total_size_(shape.first_step_size + shape.second_step_size),
        step_ratio_(shape.first_step_size / total_size_),
        min_lrs_(std::move(min_lrs)),
        max_lrs_(std::move(max_lrs)),
        decay_lr_rate_(decay_lr_rate),
        // A zero step size would divide by zero; a zero rate makes decay the identity. Exact comparisons:
        // DeepSpeed's math.isclose(x, 0) with default tolerances is true only for 0.
        skip_lr_decay_(shape.decay_step_size == 0 || decay_lr_rate == 0),
        cycle_momentum_(cycle_momentum),
        min_moms_(std::move(min_moms)),
        max_moms_(std::move(max_moms)),
        decay_mom_rate_(decay_mom_rate),
        skip_mom_decay_(shape.decay_step_size == 0 || decay_mom_rate == 0) {
    // The start writes bypass write_lrs(): DeepSpeed's OneCycle does not record them as the last lr.
    if (last_batch_iteration == -1) {
      for (std::size_t g = 0; g < min_lrs_.size(); ++g) target.set_lr(g, min_lrs_[g]);
    }
    if (cycle_momentum_ && !target.has_betas()) {
      DS_LOG(kWarning, "cycle_momentum is disabled because the optimizer does not support momentum, no betas "
                       "attribute in defaults");
      cycle_momentum_ = false;
    }
    if (cycle_momentum_ && last_batch_iteration == -1) write_betas(min_moms_);
  }

  std::string name() const override { return "OneCycle"; }

  std::vector<double> get_lr() const override {
    const double t = static_cast<double>(last_batch_iteration_);
    if (t < total_size_) {
      const double scale = scale_factor();
      std::vector<double> lrs(min_lrs_.size());
      for (std::size_t g = 0; g < lrs.size(); ++g) lrs[g] = min_lrs_[g] + (max_lrs_[g] - min_lrs_[g]) * scale;
      return lrs;
    }
    if (skip_lr_decay_) return min_lrs_;
    const double factor = 1 + decay_lr_rate_ * decay_interval();
    std::vector<double> lrs(min_lrs_.size());
    for (std::size_t g = 0; g < lrs.size(); ++g) lrs[g] = min_lrs_[g] / factor;
    return lrs;
  }

  std::optional<std::vector<double>> get_mom() const override {
    if (!cycle_momentum_) return std::nullopt;
    const double t = static_cast<double>(last_batch_iteration_);
    if (t < total_size_) {
      const double scale = scale_factor();
      std::vector<double> moms(max_moms_.size());
      for (std::size_t g = 0; g < moms.size(); ++g) moms[g] = max_moms_[g] - (max_moms_[g] - min_moms_[g]) * scale;
      return moms;
    }
    if (skip_mom_decay_) return max_moms_;
    // DeepSpeed multiplies here where the lr divides: a positive decay_mom_rate raises β1 after the cycle.
    const double factor = 1 + decay_mom_rate_ * decay_interval();
    std::vector<double> moms(max_moms_.size());
    for (std::size_t g = 0; g < moms.size(); ++g) moms[g] = max_moms_[g] * factor;
    return moms;
  }

 protected:
  void after_step() override {
    if (cycle_momentum_) write_betas(*get_mom());
  }

 private:
  void write_betas(const std::vector<double>& beta1) {
    for (std::size_t g = 0; g < beta1.size(); ++g) {
      target_.set_momentum(g, beta1[g]);
      target_.set_beta2(g, kOneCycleBeta2);
    }
  }

  // Steps into the decay phase, counting the first decay step as 1; continuous, not floored.
  double decay_interval() const {
    const double decay_iteration = (static_cast<double>(last_batch_iteration_) - total_size_) + 1;
    return decay_iteration / static_cast<double>(shape_.decay_step_size);
  }

  // Position in the cycle as a fraction of the way from the min lr to the max lr (0 at both ends, 1 at
  // the peak), quantised to stairs when the half it falls in has a stair count.
  double scale_factor() const {
    const std::int64_t batch_iteration = last_batch_iteration_ + 1;
    const double progress = static_cast<double>(batch_iteration) / total_size_;
    const double cycle = std::floor(1 + progress);
    const double x = 1. + progress - cycle;
    double scale;
    std::int64_t stair_count;
    if (x <= step_ratio_) {
      scale = x / step_ratio_;
      stair_count = shape_.first_stair_count;
    } else {
      scale = (x - 1) / (step_ratio_ - 1);
      stair_count = shape_.second_stair_count;
    }
    // Stairs come from the integer batch offset, not from `scale`, whose rounding can sit just below a
    // stair edge (DeepSpeed does the same, so its peak is reached exactly).
    if (stair_count > 0) {
      const double count = static_cast<double>(stair_count);
      const double cycle_iteration = py_mod(static_cast<double>(batch_iteration), total_size_);
      const double position = cycle_iteration <= shape_.first_step_size
                                  ? cycle_iteration * count / shape_.first_step_size
                                  : (total_size_ - cycle_iteration) * count / shape_.second_step_size;
      scale = std::floor(position) / count;
    }
    return scale;
  }

  CycleShape shape_;
  double total_size_;
  double step_ratio_;
  std::vector<double> min_lrs_;
  std::vector<double> max_lrs_;
  double decay_lr_rate_;
  bool skip_lr_decay_;
  bool cycle_momentum_;
  std::vector<double> min_moms_;
  std::vector<double> max_moms_;
  double decay_mom_rate_;
  bool skip_mom_decay_;
};

}  // namespace

std::unique_ptr<LRScheduler> make_one_cycle(const config::SchedulerConfig& c, ScheduleTarget& target,
                                            std::string_view source) {
  const CycleShape shape{
      .first_step_size = static_cast<double>(c.cycle_first_step_size),
      .second_step_size = static_cast<double>(c.cycle_second_step_size.value_or(c.cycle_first_step_size)),
      .first_stair_count = c.cycle_first_stair_count,
      .second_stair_count = c.cycle_second_stair_count.value_or(c.cycle_first_stair_count),
      .decay_step_size = c.decay_step_size,
  };
  // A zero first half would make step_ratio 0 and the rising half divide by it.
  if (shape.first_step_size <= 0) {
    fail(source, "cycle_first_step_size", cat("must be positive, got ", c.cycle_first_step_size));
  }
  if (shape.second_step_size < 0) {
    fail(source, "cycle_second_step_size", cat("must be non-negative, got ", *c.cycle_second_step_size));
  }
  const std::size_t groups = target.num_groups();
  if (c.cycle_min_lr.empty()) fail(source, "cycle_min_lr", "required by OneCycle");
  if (c.cycle_max_lr.empty()) fail(source, "cycle_max_lr", "required by OneCycle");
  // Every list is checked before the constructor writes anything, so a bad one leaves the target untouched.
  std::vector<double> min_lrs = per_group(c.cycle_min_lr, groups, "cycle_min_lr", source);
  std::vector<double> max_lrs = per_group(c.cycle_max_lr, groups, "cycle_max_lr", source);
  std::vector<double> min_moms, max_moms;
  if (c.cycle_momentum && target.has_betas()) {
    min_moms = per_group(c.cycle_min_mom, groups, "cycle_min_mom", source);
    max_moms = per_group(c.cycle_max_mom, groups, "cycle_max_mom", source);
  }
  return std::make_unique<OneCycle>(target, shape, std::move(min_lrs), std::move(max_lrs), c.decay_lr_rate,
                                    c.cycle_momentum, std::move(min_moms), std::move(max_moms), c.decay_mom_rate,
                                    c.last_batch_iteration);
}

}  // namespace deepspeed::optim::detail
