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
  virtual bool has_momentum() const = 0;
  /// β1 (Adam family) or momentum (SGD). Only meaningful when has_momentum().
  virtual double momentum(std::size_t group) const = 0;
  virtual void set_momentum(std::size_t group, double momentum) = 0;
};

}  // namespace deepspeed::optim
