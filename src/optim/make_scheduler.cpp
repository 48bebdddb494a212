// make_scheduler(): the config's scheduler.type → one of DeepSpeed's five schedules.
#include "deepspeed/util/error.h"
#include "deepspeed/util/strings.h"
#include "src/optim/lr_schedules_internal.h"

namespace deepspeed::optim {

using util::cat;

std::unique_ptr<LRScheduler> make_scheduler(const config::SchedulerConfig& config, ScheduleTarget& target,
                                            std::string_view source) {
  const std::string& type = config.type;
  if (type.empty()) return nullptr;
  if (type == "WarmupLR") return detail::make_warmup_lr(config, target, source);
  if (type == "WarmupDecayLR") return detail::make_warmup_decay_lr(config, target, source);
  if (type == "WarmupCosineLR") return detail::make_warmup_cosine_lr(config, target, source);
  if (type == "OneCycle") return detail::make_one_cycle(config, target, source);
  if (type == "LRRangeTest") return detail::make_lr_range_test(config, target, source);
  throw ConfigError(cat(source, ": scheduler.type: \"", type,
                        "\" is not a DeepSpeed schedule (WarmupLR, WarmupDecayLR, WarmupCosineLR, OneCycle, "
                        "LRRangeTest)"));
}

}  // namespace deepspeed::optim
