#pragma once
/// \file
/// Optimizers over groups of tensors. An optimizer updates each parameter from its `.grad()`; it knows nothing
/// about ranks, shards or precision: ZeRO hands it fp32 master shards whose `.grad()` is the reduced gradient
/// shard, stage 0 hands it the model's parameters. Implementations: FusedAdam (deepspeed.cpp's one-pass kernel
/// for fp32 masters on CUDA, LibTorch's fused multi-tensor Adam/AdamW kernels otherwise), TorchAdam
/// (per-tensor reference, DeepSpeed's `torch_adam`), SGD;
/// CpuAdam (cpu_adam.h, DeepSpeedCPUAdam for ZeRO-Offload) and FusedLamb (lamb.h) live in their own headers.

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>

#include "deepspeed/config/config.h"
#include "deepspeed/optim/schedule_target.h"

namespace deepspeed::optim {

/// Per-group hyperparameters (the fields a DeepSpeed param_group dict carries).
struct Hyper {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  bool adam_w_mode = true;       ///< decoupled weight decay (AdamW) vs L2 (Adam)
  bool bias_correction = true;
  bool amsgrad = false;
  double momentum = 0.0;         ///< SGD
  double dampening = 0.0;        ///< SGD
  bool nesterov = false;         ///< SGD
  double max_coeff = 10.0;       ///< Lamb
  double min_coeff = 0.01;       ///< Lamb

  static Hyper from_config(const config::OptimizerConfig& c);
};

/// Values one parameter group sets for itself, overriding the configured optimizer's (the keys of a
/// torch param_group dict, e.g. weight_decay 0 for biases and norms).
struct GroupOverrides {
  std::optional<double> lr, weight_decay, beta1, beta2, eps, momentum;
  void apply_to(Hyper& hyper) const;
};

struct ParamGroup {
  std::vector<at::Tensor> params;
  Hyper hyper;               ///< resolved hyperparameters (make_optimizer fills them from the config)
  GroupOverrides overrides;  ///< applied on top of the config by make_optimizer
};

/// Named state tensors of one parameter ("step", "exp_avg", "exp_avg_sq", "momentum_buffer", ...).
using ParamState = std::map<std::string, at::Tensor>;

class Optimizer : public ScheduleTarget {
 public:
  explicit Optimizer(std::vector<ParamGroup> groups);
  ~Optimizer() override = default;

  /// DeepSpeed's class name for logs ("FusedAdam", "SGD", ...).
  virtual std::string name() const = 0;

  /// Updates every parameter whose grad() is defined. Call on all ranks that own the parameters; runs on the
  /// current CUDA stream for device tensors. Parameters are updated in place (their storage is kept).
  virtual void step() = 0;

  /// One part of a step run in parts (a ZeRO layout's step behind the next forward, zero/strategy.h): updates
  /// the parameters `part` selects (part[g][i] for parameter i of group g; a shorter row selects none of the
  /// rest) whose grad() is defined, as step() updates them, with the gradient factor taken for the step, and
  /// keeps that factor for the step's later parts until `last`. The parts of one step select each parameter
  /// once. Results are step()'s bit for bit. Returns false, having updated nothing, where the optimizer cannot
  /// (the default): the caller then calls step().
  virtual bool step_part(const std::vector<std::vector<bool>>& part, bool last) { return false; }

  /// Zeroes gradients in place (set_to_none=false keeps views into flat gradient buffers intact).
  void zero_grad(bool set_to_none = false);

  /// The engine's factor for the gradients of the next step() (fp16 unscale × clipping). An optimizer that can
  /// apply it while it reads the gradients takes it and returns true; otherwise (the default) the engine
  /// scales the gradients first.
  virtual bool take_gradient_scale(double coefficient) { return false; }
  /// The same factor as a 0-d fp64 tensor on the gradients' device, computed there after backward: an
  /// optimizer that can read it where it runs takes it and returns true, and the host never waits for the
  /// gradients before launching the update. Otherwise (the default) the engine reads it and calls
  /// take_gradient_scale(). Taken factors apply to the next step() only.
  virtual bool take_device_gradient_scale(const at::Tensor& factor) { return false; }

  /// Whether step() accepts a 16-bit grad() beside an fp32 parameter and up-casts it itself, a bounded slice
  /// at a time. A ZeRO layout then hands over its 16-bit gradient buffers as they are instead of an fp32 copy
  /// of every gradient for the step (4 bytes per element of the device's share, all alive at once).
  /// Optimizers that say so also take the gradient scale, applied to the up-cast values.
  virtual bool upcasts_gradients() const { return false; }

  /// The model's 16-bit weights that the parameters are fp32 master copies of: copies[g][i] beside
  /// param_groups()[g].params[i] (same numel; undefined where there is none). An optimizer that stores each
  /// updated value there during step() takes them and returns true, and the ZeRO layout then leaves copying
  /// the masters into the model to it; the default declines. Call once, before the first step.
  virtual bool take_model_copies(std::vector<std::vector<at::Tensor>> copies) { return false; }

  std::vector<ParamGroup>& param_groups() { return groups_; }
  const std::vector<ParamGroup>& param_groups() const { return groups_; }

  /// State of parameter i of group g (created empty on first use).
  ParamState& state(std::size_t group, std::size_t index);
  const std::vector<std::vector<ParamState>>& all_state() const { return state_; }
  std::vector<std::vector<ParamState>>& all_state() { return state_; }

  // ScheduleTarget
  std::size_t num_groups() const override { return groups_.size(); }
  double lr(std::size_t group) const override { return groups_.at(group).hyper.lr; }
  void set_lr(std::size_t group, double lr) override { groups_.at(group).hyper.lr = lr; }
  bool has_momentum() const override { return true; }
  double momentum(std::size_t group) const override;
  void set_momentum(std::size_t group, double momentum) override;
  bool has_betas() const override { return !momentum_is_sgd(); }
  void set_beta2(std::size_t group, double beta2) override { groups_.at(group).hyper.beta2 = beta2; }

  /// DeepSpeed's get_mom(): [(β1, β2)] per group for the Adam family, [momentum] for SGD, as printed.
  virtual std::string momentum_repr() const;

  /// PyTorch's optimizer state_dict layout, so torch.load shows what users expect:
  /// {"state": {index: {"step": t, "exp_avg": t, ...}}, "param_groups": [{"lr": .., "betas": (..), ...,
  ///  "params": [index, ...]}]}. Indices count parameters across groups in order. Tensors are on the CPU.
  c10::IValue state_dict() const;
  /// Restores what state_dict() produced for an optimizer over the same parameter shapes. Tensors are moved
  /// to each parameter's device and dtype. Throws UsageError when the layout does not match.
  void load_state_dict(const c10::IValue& state);

 protected:
  /// True for optimizers whose momentum hyperparameter is SGD's `momentum` rather than β1.
  virtual bool momentum_is_sgd() const { return false; }

  std::vector<ParamGroup> groups_;
  std::vector<std::vector<ParamState>> state_;
};

/// Adam/AdamW as multi-tensor kernels, one launch per (device, dtype) bucket per group: fp32 parameters on CUDA
/// through src/optim/adam_master_kernel.cu (gradient scale and model copies in the same pass), everything else
/// (and everything under DS_REFERENCE_ADAM=1) through LibTorch's at::_fused_adam_/_fused_adamw_. Falls back to
/// the reference loop when bias_correction is off.
class FusedAdam : public Optimizer {
 public:
  using Optimizer::Optimizer;
  std::string name() const override { return "FusedAdam"; }
  void step() override;
  bool step_part(const std::vector<std::vector<bool>>& part, bool last) override;
  bool take_gradient_scale(double coefficient) override {
    grad_scale_ = coefficient;
    return true;
  }
  /// Read by the device kernel on CUDA; elsewhere, or where the kernel does not take a tensor, read on the host.
  bool take_device_gradient_scale(const at::Tensor& factor) override {
    device_grad_scale_ = factor;
    return true;
  }
  bool upcasts_gradients() const override { return true; }
  /// Takes them: on CUDA the step kernel writes them (one pass, see DS_REFERENCE_ADAM), elsewhere a copy
  /// after each parameter's update. Throws std::invalid_argument when the layout does not match the groups.
  bool take_model_copies(std::vector<std::vector<at::Tensor>> copies) override;

 private:
  /// The parameters `selected(g, i)` admits, with the factor taken for the step; `last`: the factor is spent.
  void step_selected(const std::function<bool(std::size_t, std::size_t)>& selected, bool last);

  double grad_scale_ = 1.0;       // the engine's factor for the next step()
  at::Tensor device_grad_scale_;  // or that factor on the device
  std::vector<std::vector<at::Tensor>> model_copies_;  // empty: none taken
};

/// Per-tensor Adam/AdamW written with plain tensor ops: DeepSpeed's `torch_adam` path, and the reference the
/// fused path is tested against. Supports amsgrad.
class TorchAdam : public Optimizer {
 public:
  using Optimizer::Optimizer;
  std::string name() const override;
  void step() override;
};

/// SGD with momentum, dampening, Nesterov and L2 weight decay (torch.optim.SGD semantics).
class Sgd : public Optimizer {
 public:
  using Optimizer::Optimizer;
  std::string name() const override { return "SGD"; }
  void step() override;
  std::string momentum_repr() const override;

 protected:
  bool momentum_is_sgd() const override { return true; }
};

/// Builds the optimizer named by the config (DeepSpeed's _configure_basic_optimizer). Each group's hyper is the
/// config's values with the group's overrides applied. `offloaded`: the parameters are (mostly) ZeRO-Offload's
/// host masters, so Adam/AdamW is DeepSpeedCPUAdam (CpuAdam), as in DeepSpeed.
std::unique_ptr<Optimizer> make_optimizer(const config::OptimizerConfig& config, std::vector<ParamGroup> groups,
                                          bool offloaded = false);

}  // namespace deepspeed::optim
