#pragma once
/// \file
/// What a learning-rate schedule drives: the per-group hyperparameters of an optimizer. Kept free of LibTorch
/// so the schedule formulas build and test without it.

#include <cstddef>

namespace deepspeed::optim {

class ScheduleTarget {
 public:
  virtual ~ScheduleTarget() = default;
  virtual std::size_t num_groups() const = 0;
  virtual double lr(std::size_t group) const = 0;
  virtual void set_lr(std::size_t group, double lr) = 0;
  /// True for optimizers with a momentum-like hyperparameter: β1 for Adam/AdamW/Lamb, momentum for SGD.
  /// The schedules decide on has_betas() instead (see there).
  virtual bool has_momentum() const = 0;
  /// β1 (Adam family) or momentum (SGD). Only meaningful when has_momentum().
  virtual double momentum(std::size_t group) const = 0;
  virtual void set_momentum(std::size_t group, double momentum) = 0;
  /// True when the optimizer's hyperparameters include an Adam-style `betas` pair (Adam, AdamW, Lamb), so
  /// momentum() is β1; false for SGD. DeepSpeed's OneCycle cycles momentum only when `'betas'` is among the
  /// optimizer's defaults: SGD's momentum is never touched by a schedule.
  virtual bool has_betas() const = 0;
  /// Sets β2 of a group; called only when has_betas(). OneCycle assigns the whole pair `betas = (β1, 0.99)`,
  /// so a configured β2 (e.g. 0.999) becomes 0.99 as soon as OneCycle is constructed.
  virtual void set_beta2(std::size_t group, double beta2) = 0;
};

}  // namespace deepspeed::optim
