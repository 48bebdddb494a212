#pragma once
/// \file
/// DeepSpeed's learning-rate schedules (deepspeed/runtime/lr_schedules.py): WarmupLR, WarmupDecayLR,
/// WarmupCosineLR, OneCycle and LRRangeTest, reproducing DeepSpeed's numbers bit for bit, including what the
/// constructors write into the optimizer. docs/lr_schedules.md gives the formulas and DeepSpeed's quirks.
///
/// Usage (what DeepSpeedEngine does): build once after the optimizer, then call step() after every
/// optimizer step that was not skipped for overflow. step() and the constructor are the only calls that
/// write to the target.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "deepspeed/config/config.h"
#include "deepspeed/optim/schedule_target.h"

namespace deepspeed::optim {

/// β2 that OneCycle writes next to its cycled β1 (DeepSpeed hard-codes the pair `(momentum, 0.99)`).
inline constexpr double kOneCycleBeta2 = 0.99;

class LRScheduler {
 public:
  LRScheduler(const LRScheduler&) = delete;
  LRScheduler& operator=(const LRScheduler&) = delete;
  virtual ~LRScheduler() = default;

  /// DeepSpeed's class name: "WarmupLR", "WarmupDecayLR", "WarmupCosineLR", "OneCycle" or "LRRangeTest".
  virtual std::string name() const = 0;

  /// Sets last_batch_iteration to `batch_iteration` (default: last + 1), then writes get_lr() into every
  /// group of the target and, for OneCycle with an Adam-style target, betas = (get_mom(), 0.99). Any
  /// iteration may be given, also a past one or one far ahead; nothing but last_batch_iteration is carried
  /// between calls.
  void step(std::optional<std::int64_t> batch_iteration = std::nullopt);

  /// The lrs (one per group) for the current last_batch_iteration, computed without writing anything.
  /// Before the first step (last_batch_iteration < 0) this is what DeepSpeed's get_lr() gives there:
  /// WarmupLR/WarmupDecayLR the min lrs, WarmupCosineLR zeros (both with DeepSpeed's warning).
  virtual std::vector<double> get_lr() const = 0;

  /// β1 per group for the current iteration when this schedule cycles momentum (OneCycle with
  /// cycle_momentum on an Adam-style target); nullopt otherwise, as DeepSpeed's get_mom() returns None.
  /// The β2 written with it is always kOneCycleBeta2.
  virtual std::optional<std::vector<double>> get_mom() const { return std::nullopt; }

  /// The lrs the last step() wrote (read back from the target). Also set by the constructor when it starts
  /// a schedule from scratch (last_batch_iteration == -1), except OneCycle, whose constructor writes the
  /// target's lr but, like DeepSpeed's, records nothing. Throws UsageError "need to call step() first" when
  /// nothing was recorded yet (DeepSpeed asserts).
  const std::vector<double>& get_last_lr() const;

  std::int64_t last_batch_iteration() const { return last_batch_iteration_; }

  /// DeepSpeed's checkpoint entry: {"last_batch_iteration": N}.
  nlohmann::json state_dict() const;
  /// Restores last_batch_iteration only. Like DeepSpeed, it writes nothing to the target: the lr is updated
  /// by the next step(), which then continues exactly where the saved schedule would have.
  /// Throws UsageError when the key is missing or not an integer.
  void load_state_dict(const nlohmann::json& state);

 protected:
  LRScheduler(ScheduleTarget& target, std::int64_t last_batch_iteration);

  /// Writes `lrs` into the target's groups and records what the target then holds (DeepSpeed's update_lr).
  void write_lrs(const std::vector<double>& lrs);
  /// Called by step() after the lrs are written; OneCycle writes momentum here.
  virtual void after_step() {}

  ScheduleTarget& target_;
  std::int64_t last_batch_iteration_;

 private:
  std::optional<std::vector<double>> last_lr_;
};

/// Builds the schedule `config.type` names, bound to `target` (which must outlive it and keep its number of
/// groups). The constructor has DeepSpeed's side effects on the target: with last_batch_iteration == -1 it
/// writes the starting lrs (WarmupLR/WarmupDecayLR: warmup_min_lr; WarmupCosineLR: 0; OneCycle:
/// cycle_min_lr; LRRangeTest: lr_range_test_min_lr) and OneCycle writes betas = (cycle_min_mom, 0.99).
/// WarmupCosineLR reads each group's current lr here as the base its ratios scale; WarmupLR without
/// warmup_max_lr does the same for its max lr.
/// Throws ConfigError "<source>: scheduler.params.<key>: ..." for a per-group list whose size is neither 1
/// nor the number of groups, and for parameters DeepSpeed's constructors reject. Returns nullptr when
/// config.type is empty (no scheduler configured).
std::unique_ptr<LRScheduler> make_scheduler(const config::SchedulerConfig& config, ScheduleTarget& target,
                                            std::string_view source = "ds_config");

}  // namespace deepspeed::optim
