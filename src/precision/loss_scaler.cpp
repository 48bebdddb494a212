#include "deepspeed/precision/loss_scaler.h"

#include <algorithm>
#include <cmath>

#include "deepspeed/util/error.h"
#include "deepspeed/util/strings.h"

namespace deepspeed::precision {

using util::cat;

LossScaler::LossScaler(const config::Fp16Config& fp16)
    : dynamic_(fp16.loss_scale == 0.0),
      cur_scale_(fp16.loss_scale == 0.0 ? std::ldexp(1.0, fp16.initial_scale_power) : fp16.loss_scale),
      min_scale_(fp16.min_loss_scale),
      scale_window_(fp16.loss_scale_window),
      delayed_shift_(fp16.hysteresis),
      cur_hysteresis_(fp16.hysteresis),
      consecutive_hysteresis_(fp16.consecutive_hysteresis) {}

std::string LossScaler::update(bool overflow, int rank) {
  if (!dynamic_) return overflow ? cat("[deepspeed] OVERFLOW! Rank ", rank, " Skipping step.") : std::string();
  std::string message;
  if (overflow) {
    if (delayed_shift_ == 1 || cur_hysteresis_ == 1) {
      if (cur_scale_ == min_scale_) {
        throw JobError("Current loss scale already at minimum - cannot decrease scale anymore. Exiting run. "
                       "(bf16 training, a lower learning rate, or a lower fp16.min_loss_scale usually helps)");
      }
      const double next = std::max(cur_scale_ / scale_factor_, min_scale_);
      message = cat("[deepspeed] OVERFLOW! Rank ", rank, " Skipping step. Attempted loss scale: ",
                    static_cast<std::int64_t>(cur_scale_), ", reducing to ", static_cast<std::int64_t>(next));
      cur_scale_ = next;
    } else {
      message = cat("[deepspeed] OVERFLOW! Rank ", rank, " Skipping step. Attempted loss scale: ",
                    static_cast<std::int64_t>(cur_scale_), ", but hysteresis is ", cur_hysteresis_,
                    ". Reducing hysteresis to ", cur_hysteresis_ - 1);
      --cur_hysteresis_;
    }
    last_overflow_iter_ = cur_iter_;
  } else {
    if (consecutive_hysteresis_) cur_hysteresis_ = delayed_shift_;
    const std::int64_t stable_interval = cur_iter_ - last_overflow_iter_ - 1;
    if (stable_interval > 0 && stable_interval % scale_window_ == 0) {
      if (!consecutive_hysteresis_) cur_hysteresis_ = delayed_shift_;
      cur_scale_ *= scale_factor_;
    }
  }
  ++cur_iter_;
  return message;
}

nlohmann::json LossScaler::state_dict() const {
  return {{"cur_scale", cur_scale_}, {"cur_iter", cur_iter_}, {"last_overflow_iter", last_overflow_iter_},
          {"cur_hysteresis", cur_hysteresis_}};
}

void LossScaler::load_state_dict(const nlohmann::json& state) {
  try {
    cur_scale_ = state.at("cur_scale").get<double>();
    cur_iter_ = state.at("cur_iter").get<std::int64_t>();
    last_overflow_iter_ = state.at("last_overflow_iter").get<std::int64_t>();
    cur_hysteresis_ = state.at("cur_hysteresis").get<int>();
  } catch (const nlohmann::json::exception& e) {
    throw UsageError(cat("loss scaler state in checkpoint is incomplete: ", e.what()));
  }
}

}  // namespace deepspeed::precision
