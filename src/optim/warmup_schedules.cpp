// WarmupLR, WarmupDecayLR and WarmupCosineLR. All three clamp the warmup length to at least 2 steps (so that
// ln(warmup_steps) is never 0) and compute in DeepSpeed's operation order, so the doubles match its floats.
#include <algorithm>
#include <cmath>
#include <numbers>

#include "deepspeed/util/logging.h"
#include "deepspeed/util/strings.h"
#include "src/optim/lr_schedules_internal.h"

namespace deepspeed::optim::detail {

using util::cat;

namespace {

std::int64_t checked_warmup_steps(std::int64_t warmup_num_steps, std::string_view source) {
  if (warmup_num_steps <= 0) {
    fail(source, "warmup_num_steps", cat("must be a positive integer, got ", warmup_num_steps));
  }
  return std::max<std::int64_t>(2, warmup_num_steps);
}

// DeepSpeed compares against the clamped warmup length but prints the configured one.
void warn_if_total_short(std::int64_t total, std::int64_t warmup_steps, std::int64_t configured_warmup) {
  if (total < warmup_steps) {
    DS_LOG(kWarning, "total_num_steps ", total, " is less than warmup_num_steps ", configured_warmup);
  }
}

/// lr = min + (max - min) * gamma, gamma = warmup fraction for t < W, then 1.
class WarmupLR : public LRScheduler {
 public:
  WarmupLR(ScheduleTarget& target, std::vector<double> min_lrs, const std::vector<double>& max_lrs,
           std::int64_t warmup_steps, WarmupType type, std::int64_t last_batch_iteration)
      : LRScheduler(target, last_batch_iteration),
        min_lrs_(std::move(min_lrs)),
        warmup_steps_(warmup_steps),
        type_(type),
        inverse_log_(1.0 / std::log(static_cast<double>(warmup_steps))) {
    delta_lrs_.resize(min_lrs_.size());
    for (std::size_t g = 0; g < delta_lrs_.size(); ++g) delta_lrs_[g] = max_lrs[g] - min_lrs_[g];
    // At t = -1 get_lr() is the min lrs; gamma() (virtual, not yet the subclass's here) is not reached.
    if (last_batch_iteration == -1) write_lrs(get_lr());
  }

  std::string name() const override { return "WarmupLR"; }

  std::vector<double> get_lr() const final {
    if (last_batch_iteration_ < 0) {
      warn_not_started();
      return min_lrs_;
    }
    const double g = gamma();
    std::vector<double> lrs(min_lrs_.size());
    for (std::size_t i = 0; i < lrs.size(); ++i) lrs[i] = min_lrs_[i] + delta_lrs_[i] * g;
    return lrs;
  }

 protected:
  virtual double gamma() const {
    if (last_batch_iteration_ < warmup_steps_) {
      return warmup_fraction(type_, last_batch_iteration_, warmup_steps_, inverse_log_);
    }
    return 1.0;
  }

  std::vector<double> min_lrs_;
  std::vector<double> delta_lrs_;
  std::int64_t warmup_steps_;
  WarmupType type_;
  double inverse_log_;
};

/// WarmupLR, then gamma = max(0, (T - t) / max(1, T - W)): linear decay reaching 0 at t = T.
class WarmupDecayLR final : public WarmupLR {
 public:
  WarmupDecayLR(ScheduleTarget& target, std::int64_t total_num_steps, std::vector<double> min_lrs,
                const std::vector<double>& max_lrs, std::int64_t warmup_steps, WarmupType type,
                std::int64_t last_batch_iteration)
      : WarmupLR(target, std::move(min_lrs), max_lrs, warmup_steps, type, last_batch_iteration),
        total_num_steps_(total_num_steps) {}

  std::string name() const override { return "WarmupDecayLR"; }

 protected:
  double gamma() const override {
    if (last_batch_iteration_ < warmup_steps_) {
      return warmup_fraction(type_, last_batch_iteration_, warmup_steps_, inverse_log_);
    }
    const double remaining = static_cast<double>(total_num_steps_ - last_batch_iteration_);
    const double span = std::max(1.0, static_cast<double>(total_num_steps_ - warmup_steps_));
    return std::max(0.0, remaining / span);
  }

 private:
  std::int64_t total_num_steps_;
};

/// lr = base_lr * ratio, base_lr = the group's lr at construction. Warmup: ratio from warmup_min_ratio to 1;
/// then a half cosine from 1 down to cos_min_ratio, held there once t passes the end.
class WarmupCosineLR final : public LRScheduler {
 public:
  WarmupCosineLR(ScheduleTarget& target, std::int64_t total_num_steps, double warmup_min_ratio,
                 std::int64_t warmup_steps, double cos_min_ratio, WarmupType type, std::int64_t last_batch_iteration)
      : LRScheduler(target, last_batch_iteration),
        total_num_steps_(total_num_steps),
        warmup_min_ratio_(warmup_min_ratio),
        warmup_steps_(warmup_steps),
        cos_min_ratio_(cos_min_ratio),
        type_(type),
        inverse_log_(1.0 / std::log(static_cast<double>(warmup_steps))),
        base_lrs_(current_lrs(target)) {
    // Unlike WarmupLR, the start value is 0, not the warmup_min_ratio lr: t = -1 is "not started".
    if (last_batch_iteration == -1) write_lrs(get_lr());
  }

  std::string name() const override { return "WarmupCosineLR"; }

  std::vector<double> get_lr() const override {
    if (last_batch_iteration_ < 0) {
      warn_not_started();
      return std::vector<double>(base_lrs_.size(), 0.0);
    }
    const double r = ratio();
    std::vector<double> lrs(base_lrs_.size());
    for (std::size_t g = 0; g < lrs.size(); ++g) lrs[g] = base_lrs_[g] * r;
    return lrs;
  }

 private:
  double ratio() const {
    const std::int64_t t = last_batch_iteration_;
    if (t < warmup_steps_) {
      const double fraction = warmup_fraction(type_, t, warmup_steps_, inverse_log_);
      return warmup_min_ratio_ + fraction * (1. - warmup_min_ratio_);
    }
    const std::int64_t done = t - warmup_steps_ + 1;
    const std::int64_t span = std::max<std::int64_t>(1, total_num_steps_ - warmup_steps_);
    const double progress = std::min(1.0, static_cast<double>(done) / static_cast<double>(span));
    const double cosine = (1 + std::cos(std::numbers::pi * progress)) / 2;
    return std::max(0.0, cos_min_ratio_ + (1. - cos_min_ratio_) * cosine);
  }

  std::int64_t total_num_steps_;
  double warmup_min_ratio_;
  std::int64_t warmup_steps_;
  double cos_min_ratio_;
  WarmupType type_;
  double inverse_log_;
  std::vector<double> base_lrs_;
};

}  // namespace

std::unique_ptr<LRScheduler> make_warmup_lr(const config::SchedulerConfig& c, ScheduleTarget& target,
                                            std::string_view source) {
  const std::int64_t warmup_steps = checked_warmup_steps(c.warmup_num_steps, source);
  const std::size_t groups = target.num_groups();
  std::vector<double> min_lrs = per_group(c.warmup_min_lr, groups, "warmup_min_lr", source);
  // Without warmup_max_lr, WarmupLR warms up to the lr the optimizer was configured with.
  const std::vector<double> max_lrs = c.warmup_max_lr.empty()
                                          ? current_lrs(target)
                                          : per_group(c.warmup_max_lr, groups, "warmup_max_lr", source);
  return std::make_unique<WarmupLR>(target, std::move(min_lrs), max_lrs, warmup_steps,
                                    parse_warmup_type(c.warmup_type), c.last_batch_iteration);
}

std::unique_ptr<LRScheduler> make_warmup_decay_lr(const config::SchedulerConfig& c, ScheduleTarget& target,
                                                  std::string_view source) {
  const std::int64_t warmup_steps = checked_warmup_steps(c.warmup_num_steps, source);
  const std::size_t groups = target.num_groups();
  std::vector<double> min_lrs = per_group(c.warmup_min_lr, groups, "warmup_min_lr", source);
  // WarmupDecayLR's own default is 0.001, not the optimizer's lr.
  const std::vector<double> max_lrs =
      per_group(c.warmup_max_lr.empty() ? std::vector<double>{0.001} : c.warmup_max_lr, groups, "warmup_max_lr",
                source);
  auto scheduler = std::make_unique<WarmupDecayLR>(target, c.total_num_steps, std::move(min_lrs), max_lrs,
                                                   warmup_steps, parse_warmup_type(c.warmup_type),
                                                   c.last_batch_iteration);
  warn_if_total_short(c.total_num_steps, warmup_steps, c.warmup_num_steps);
  return scheduler;
}

std::unique_ptr<LRScheduler> make_warmup_cosine_lr(const config::SchedulerConfig& c, ScheduleTarget& target,
                                                   std::string_view source) {
  const std::int64_t warmup_steps = checked_warmup_steps(c.warmup_num_steps, source);
  const WarmupType type = parse_warmup_type(c.warmup_type);
  warn_if_total_short(c.total_num_steps, warmup_steps, c.warmup_num_steps);
  return std::make_unique<WarmupCosineLR>(target, c.total_num_steps, c.warmup_min_ratio, warmup_steps,
                                          c.cos_min_ratio, type, c.last_batch_iteration);
}

}  // namespace deepspeed::optim::detail
