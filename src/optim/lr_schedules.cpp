// The scheduler base (step/state shared by every schedule) and the helpers the schedules share.
// The arithmetic follows DeepSpeed's operation order exactly so that results match to the last bit.
#include "deepspeed/optim/lr_schedules.h"

#include <cmath>

#include "deepspeed/util/error.h"
#include "deepspeed/util/logging.h"
#include "deepspeed/util/strings.h"
#include "src/optim/lr_schedules_internal.h"

namespace deepspeed::optim {

using util::cat;

LRScheduler::LRScheduler(ScheduleTarget& target, std::int64_t last_batch_iteration)
    : target_(target), last_batch_iteration_(last_batch_iteration) {}

void LRScheduler::step(std::optional<std::int64_t> batch_iteration) {
  last_batch_iteration_ = batch_iteration.value_or(last_batch_iteration_ + 1);
  write_lrs(get_lr());
  after_step();
}

void LRScheduler::write_lrs(const std::vector<double>& lrs) {
  std::vector<double> written(lrs.size());
  for (std::size_t g = 0; g < lrs.size(); ++g) {
    target_.set_lr(g, lrs[g]);
    // Read back, as DeepSpeed's update_lr does: a target that stores lr at lower precision reports that.
    written[g] = target_.lr(g);
  }
  last_lr_ = std::move(written);
}

const std::vector<double>& LRScheduler::get_last_lr() const {
  if (!last_lr_) throw UsageError(cat(name(), ".get_last_lr(): need to call step() first"));
  return *last_lr_;
}

nlohmann::json LRScheduler::state_dict() const { return {{"last_batch_iteration", last_batch_iteration_}}; }

void LRScheduler::load_state_dict(const nlohmann::json& state) {
  const auto it = state.is_object() ? state.find("last_batch_iteration") : state.end();
  if (it == state.end() || !it->is_number_integer()) {
    throw UsageError(cat(name(), ".load_state_dict(): expected {\"last_batch_iteration\": <integer>}, got ",
                         state.dump()));
  }
  last_batch_iteration_ = it->get<std::int64_t>();
}

namespace detail {

void fail(std::string_view source, std::string_view key, std::string_view message) {
  throw ConfigError(cat(source, ": scheduler.params.", key, ": ", message));
}

std::vector<double> per_group(const std::vector<double>& values, std::size_t groups, std::string_view key,
                              std::string_view source) {
  if (values.size() == 1) return std::vector<double>(groups, values[0]);
  if (values.size() != groups) {
    fail(source, key, cat("expected one value or one per parameter group (", groups, "), got ", values.size(),
                          ": ", util::py_float_list(values)));
  }
  return values;
}

std::vector<double> current_lrs(const ScheduleTarget& target) {
  std::vector<double> lrs(target.num_groups());
  for (std::size_t g = 0; g < lrs.size(); ++g) lrs[g] = target.lr(g);
  return lrs;
}

void warn_not_started() {
  DS_LOG(kWarning, "Attempting to get learning rate from scheduler before it has started");
}

WarmupType parse_warmup_type(const std::string& name) {
  if (name == "linear") return WarmupType::kLinear;
  if (name != "log") {
    DS_LOG(kWarning, "Using unknown warmup_type: ", name, ". The increasing function is set to default (log)");
  }
  return WarmupType::kLog;
}

double warmup_fraction(WarmupType type, std::int64_t t, std::int64_t warmup_steps, double inverse_log) {
  if (type == WarmupType::kLog) return inverse_log * std::log(static_cast<double>(t + 1));
  return static_cast<double>(t) / static_cast<double>(warmup_steps);
}

}  // namespace detail

}  // namespace deepspeed::optim
