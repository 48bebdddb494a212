#pragma once
// Internal to ds_schedules: helpers shared by the schedule files and the per-schedule factories that
// make_scheduler() dispatches to. Each factory turns the config into the arguments DeepSpeed's constructor of
// that class would receive and runs the constructor's side effects on the target.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "deepspeed/optim/lr_schedules.h"

namespace deepspeed::optim::detail {

/// Throws ConfigError "<source>: scheduler.params.<key>: <message>".
[[noreturn]] void fail(std::string_view source, std::string_view key, std::string_view message);

/// DeepSpeed's _format_param: one value per group. A single value applies to every group (DeepSpeed does
/// that for a scalar; the config keeps scalars as one-element lists); any other size must equal `groups`.
std::vector<double> per_group(const std::vector<double>& values, std::size_t groups, std::string_view key,
                              std::string_view source);

/// The target's current lr of every group.
std::vector<double> current_lrs(const ScheduleTarget& target);

/// DeepSpeed's warning when get_lr() runs before the schedule started (last_batch_iteration < 0), which
/// its constructors trigger themselves.
void warn_not_started();

enum class WarmupType { kLog, kLinear };

/// "linear" or "log"; anything else is DeepSpeed's warning and log (the config parser already rejects it).
WarmupType parse_warmup_type(const std::string& name);

/// The warmup fraction shared by WarmupLR, WarmupDecayLR and WarmupCosineLR for 0 <= t < warmup_steps:
/// log: ln(t + 1) / ln(warmup_steps) (as inverse_log * ln(t + 1)); linear: t / warmup_steps.
double warmup_fraction(WarmupType type, std::int64_t t, std::int64_t warmup_steps, double inverse_log);

std::unique_ptr<LRScheduler> make_warmup_lr(const config::SchedulerConfig& c, ScheduleTarget& target,
                                            std::string_view source);
std::unique_ptr<LRScheduler> make_warmup_decay_lr(const config::SchedulerConfig& c, ScheduleTarget& target,
                                                  std::string_view source);
std::unique_ptr<LRScheduler> make_warmup_cosine_lr(const config::SchedulerConfig& c, ScheduleTarget& target,
                                                   std::string_view source);
std::unique_ptr<LRScheduler> make_one_cycle(const config::SchedulerConfig& c, ScheduleTarget& target,
                                            std::string_view source);
std::unique_ptr<LRScheduler> make_lr_range_test(const config::SchedulerConfig& c, ScheduleTarget& target,
                                                std::string_view source);

}  // namespace deepspeed::optim::detail
