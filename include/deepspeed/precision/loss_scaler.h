#pragma once
/// \file
/// fp16 loss scaling, DeepSpeed's state machine (runtime/fp16/loss_scaler.py), without tensors: the caller
/// detects overflow and reports it with update(). Static scaling (fp16.loss_scale > 0) never changes.

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "deepspeed/config/config.h"

namespace deepspeed::precision {

class LossScaler {
 public:
  /// From the fp16 section: dynamic unless loss_scale > 0; init 2^initial_scale_power.
  explicit LossScaler(const config::Fp16Config& fp16);
  /// A fixed scale of 1 (bf16 / fp32): update() never changes it.
  LossScaler() = default;

  double scale() const { return cur_scale_; }
  bool dynamic() const { return dynamic_; }

  /// Records one optimizer step's outcome. On overflow: hysteresis runs down first, then the scale halves
  /// (never below min_loss_scale); after `loss_scale_window` clean steps since the last overflow it doubles.
  /// Returns DeepSpeed's "[deepspeed] OVERFLOW! ..." message on overflow (empty otherwise); the caller logs it
  /// on rank 0. Throws JobError "Current loss scale already at minimum - cannot decrease scale anymore.
  /// Exiting run." when an overflow arrives at the minimum scale with no hysteresis left.
  std::string update(bool overflow, int rank = 0);

  int hysteresis() const { return cur_hysteresis_; }
  std::int64_t iteration() const { return cur_iter_; }

  /// Checkpoint state: {cur_scale, cur_iter, last_overflow_iter, cur_hysteresis}.
  nlohmann::json state_dict() const;
  void load_state_dict(const nlohmann::json& state);

 private:
  bool dynamic_ = false;
  double cur_scale_ = 1.0;
  double min_scale_ = 1.0;
  double scale_factor_ = 2.0;
  int scale_window_ = 1000;
  int delayed_shift_ = 1;
  int cur_hysteresis_ = 1;
  bool consecutive_hysteresis_ = false;
  std::int64_t cur_iter_ = 0;
  std::int64_t last_overflow_iter_ = -1;
};

}  // namespace deepspeed::precision
