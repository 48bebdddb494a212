#include "deepspeed/optim/optimizer.h"

#include <ATen/ATen.h>

#include "deepspeed/optim/adagrad_lion.h"
#include "deepspeed/optim/cpu_adam.h"
#include "deepspeed/optim/lamb.h"
#include "deepspeed/util/error.h"
#include "deepspeed/util/strings.h"

namespace deepspeed::optim {

Hyper Hyper::from_config(const config::OptimizerConfig& c) {
  Hyper h;
  h.lr = c.lr;
  h.beta1 = c.betas.at(0);
  h.beta2 = c.betas.at(1);
  h.eps = c.eps;
  h.weight_decay = c.weight_decay;
  h.adam_w_mode = c.adam_w_mode;
  h.bias_correction = c.bias_correction;
  h.amsgrad = c.amsgrad;
  h.momentum = c.momentum;
  h.dampening = c.dampening;
  h.nesterov = c.nesterov;
  h.max_coeff = c.max_coeff;
  h.min_coeff = c.min_coeff;
  return h;
}

void GroupOverrides::apply_to(Hyper& h) const {
  if (lr) h.lr = *lr;
  if (weight_decay) h.weight_decay = *weight_decay;
  if (beta1) h.beta1 = *beta1;
  if (beta2) h.beta2 = *beta2;
  if (eps) h.eps = *eps;
  if (momentum) h.momentum = *momentum;
}

Optimizer::Optimizer(std::vector<ParamGroup> groups) : groups_(std::move(groups)) {
  // DeepSpeed drops param groups without parameters ("Removing param_group that has no 'params'").
  std::erase_if(groups_, [](const ParamGroup& g) { return g.params.empty(); });
  for (const auto& g : groups_) state_.emplace_back(g.params.size());
}

void Optimizer::zero_grad(bool set_to_none) {
  for (auto& g : groups_) {
    for (auto& p : g.params) {
      if (!p.grad().defined()) continue;
      if (set_to_none) {
        p.mutable_grad().reset();
      } else {
        p.mutable_grad().detach_();
        p.mutable_grad().zero_();
      }
    }
  }
}

ParamState& Optimizer::state(std::size_t group, std::size_t index) { return state_.at(group).at(index); }

double Optimizer::momentum(std::size_t group) const {
  const auto& h = groups_.at(group).hyper;
  return momentum_is_sgd() ? h.momentum : h.beta1;
}

void Optimizer::set_momentum(std::size_t group, double momentum) {
  auto& h = groups_.at(group).hyper;
  (momentum_is_sgd() ? h.momentum : h.beta1) = momentum;
}

std::string Optimizer::momentum_repr() const {
  std::string out = "[";
  for (std::size_t i = 0; i < groups_.size(); ++i) {
    out += util::cat(i ? ", " : "", "(", util::py_float(groups_[i].hyper.beta1), ", ",
                     util::py_float(groups_[i].hyper.beta2), ")");
  }
  return out + "]";
}

std::unique_ptr<Optimizer> make_optimizer(const config::OptimizerConfig& config, std::vector<ParamGroup> groups,
                                          bool offloaded) {
  const Hyper defaults = Hyper::from_config(config);
  for (auto& g : groups) {
    g.hyper = defaults;
    g.overrides.apply_to(g.hyper);
  }
  if (config.type == "adam" || config.type == "adamw") {
    if (config.torch_adam || config.amsgrad) return std::make_unique<TorchAdam>(std::move(groups));
    if (offloaded) return std::make_unique<CpuAdam>(std::move(groups));
    return std::make_unique<FusedAdam>(std::move(groups));
  }
  if (config.type == "sgd") return std::make_unique<Sgd>(std::move(groups));
  if (config.type == "lamb") return std::make_unique<FusedLamb>(std::move(groups));
  if (config.type == "adagrad") return std::make_unique<Adagrad>(std::move(groups), offloaded);
  if (config.type == "lion") return std::make_unique<Lion>(std::move(groups), offloaded);
  throw ConfigError(util::cat("optimizer.type: \"", config.type, "\" is not implemented yet"));
}

}  // namespace deepspeed::optim
