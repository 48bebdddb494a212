#pragma once
/// \file
/// Adagrad and Lion, DeepSpeed's other two optimizers with CPU versions (for ZeRO-Offload). Device parameters
/// are stepped with LibTorch tensor ops; fp32 host masters (offload) with one pass each on LibTorch's threads, which the
/// tensor ops are the tested reference of (src/optim/adagrad_lion_kernels.h). Which DeepSpeed
/// class a run stands for (and the name the engine logs) depends on where the parameters live:
///
/// | optimizer.type | on the device | offloaded (ZeRO-Offload) |
/// |---|---|---|
/// | Adagrad | torch.optim.Adagrad ("Adagrad") | DeepSpeedCPUAdagrad |
/// | Lion    | FusedLion                       | DeepSpeedCPULion    |
///
/// Adagrad, per parameter p with gradient g (after the engine's unscaling and clipping):
///   g += wd·p  (L2, when weight_decay > 0);   sum += g²;   p -= lr · g / (sqrt(sum) + eps)
/// — torch.optim.Adagrad with lr_decay 0 and initial_accumulator_value 0, and DeepSpeedCPUAdagrad's
/// vectorised path. State: "step" (0-dim fp32), "sum" (torch's name; DeepSpeedCPUAdagrad calls it exp_avg_sq).
///
/// Lion (arXiv:2302.06675), per parameter:
///   c = β1·m + (1-β1)·g;   p = p·(1 - lr·wd) - lr·sign(c);   m = β2·m + (1-β2)·g
/// with sign(0) = 0, as in the paper: an element whose gradient and momentum are both zero (an unused
/// embedding row) does not move. (DeepSpeedCPULion takes copysign(lr, c), which moves it by lr at every step.)
/// State: "step" (0-dim fp32), "exp_avg".
///
/// Both update every parameter whose grad() is defined, in the parameter's dtype and on its device; call on
/// every rank that owns parameters, on the current CUDA stream for device tensors.

#include <string>
#include <vector>

#include "deepspeed/optim/optimizer.h"

namespace deepspeed::optim {

/// Hyperparameters used: lr, eps, weight_decay.
class Adagrad : public Optimizer {
 public:
  /// `offloaded`: the parameters are ZeRO-Offload's host masters (DeepSpeedCPUAdagrad).
  Adagrad(std::vector<ParamGroup> groups, bool offloaded) : Optimizer(std::move(groups)), offloaded_(offloaded) {}
  std::string name() const override { return offloaded_ ? "DeepSpeedCPUAdagrad" : "Adagrad"; }
  void step() override;
  /// Adagrad has neither betas nor a momentum; DeepSpeed's get_mom() prints 0.0 per group.
  bool has_momentum() const override { return false; }
  bool has_betas() const override { return false; }
  std::string momentum_repr() const override;
  bool offloaded() const { return offloaded_; }

 private:
  bool offloaded_;
};

/// Hyperparameters used: lr, beta1, beta2, weight_decay (decoupled).
class Lion : public Optimizer {
 public:
  /// `offloaded`: the parameters are ZeRO-Offload's host masters (DeepSpeedCPULion).
  Lion(std::vector<ParamGroup> groups, bool offloaded) : Optimizer(std::move(groups)), offloaded_(offloaded) {}
  std::string name() const override { return offloaded_ ? "DeepSpeedCPULion" : "FusedLion"; }
  void step() override;
  bool offloaded() const { return offloaded_; }

 private:
  bool offloaded_;
};

}  // namespace deepspeed::optim
