// Adagrad and Lion (contract and formulas in adagrad_lion.h).
#include "deepspeed/optim/adagrad_lion.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "deepspeed/util/strings.h"

namespace deepspeed::optim {

namespace {

// The state tensor `key` of one parameter, zeros like it on first use; "step" counted up.
at::Tensor& state_like(ParamState& s, const std::string& key, const at::Tensor& p) {
  auto it = s.find(key);
  if (it == s.end()) it = s.emplace(key, at::zeros_like(p, at::MemoryFormat::Contiguous)).first;
  return it->second;
}

void count_step(ParamState& s, const at::Tensor& p) {
  auto it = s.find("step");
  if (it == s.end()) it = s.emplace("step", at::zeros({}, p.options().dtype(at::kFloat))).first;
  it->second.add_(1);
}

// The gradient in the parameter's dtype (a 16-bit gradient beside fp32 masters is read at full precision).
at::Tensor gradient_of(const at::Tensor& p) {
  const at::Tensor& g = p.grad();
  return g.scalar_type() == p.scalar_type() ? g : g.to(p.scalar_type());
}

// update(hyper, parameter, its gradient, its state) for every parameter with a gradient, its step counted.
template <typename Update>
void step_each(Optimizer& optimizer, Update update) {
  at::NoGradGuard no_grad;
  auto& groups = optimizer.param_groups();
  for (std::size_t gi = 0; gi < groups.size(); ++gi) {
    for (std::size_t i = 0; i < groups[gi].params.size(); ++i) {
      at::Tensor& p = groups[gi].params[i];
      if (!p.grad().defined()) continue;
      ParamState& s = optimizer.state(gi, i);
      count_step(s, p);
      update(groups[gi].hyper, p, gradient_of(p), s);
    }
  }
}

}  // namespace

void Adagrad::step() {
  step_each(*this, [](const Hyper& h, at::Tensor& p, at::Tensor g, ParamState& s) {
    if (h.weight_decay != 0) g = g.add(p, h.weight_decay);
    at::Tensor& sum = state_like(s, "sum", p);
    sum.addcmul_(g, g, 1);
    p.addcdiv_(g, sum.sqrt().add_(h.eps), -h.lr);
  });
}

std::string Adagrad::momentum_repr() const { return util::py_float_list(std::vector<double>(groups_.size(), 0.0)); }

void Lion::step() {
  step_each(*this, [](const Hyper& h, at::Tensor& p, const at::Tensor& g, ParamState& s) {
    at::Tensor& m = state_like(s, "exp_avg", p);
    const at::Tensor direction = m.mul(h.beta1).add_(g, 1 - h.beta1).sign_();
    if (h.weight_decay != 0) p.mul_(1 - h.lr * h.weight_decay);
    p.add_(direction, -h.lr);
    m.mul_(h.beta2).add_(g, 1 - h.beta2);
  });
}

}  // namespace deepspeed::optim
