// Adagrad and Lion (contract and formulas in adagrad_lion.h).
#include "deepspeed/optim/adagrad_lion.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "deepspeed/util/strings.h"
#include "src/optim/adagrad_lion_kernels.h"

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

// update(hyper, parameter, its gradient, its state) for every parameter with a gradient, its step counted.
// The kernels (adagrad_lion_kernels.h) read a 16-bit gradient beside fp32 masters at full precision.
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
      update(groups[gi].hyper, p, p.grad(), s);
    }
  }
}

}  // namespace

void Adagrad::step() {
  step_each(*this, [](const Hyper& h, at::Tensor& p, const at::Tensor& g, ParamState& s) {
    at::Tensor& sum = state_like(s, "sum", p);
    if (detail::host_kernel_applies(p, g, sum)) {
      detail::adagrad_host(p, g, sum, h);
    } else {
      detail::adagrad_reference(p, g, sum, h);
    }
  });
}

std::string Adagrad::momentum_repr() const { return util::py_float_list(std::vector<double>(groups_.size(), 0.0)); }

void Lion::step() {
  step_each(*this, [](const Hyper& h, at::Tensor& p, const at::Tensor& g, ParamState& s) {
    at::Tensor& m = state_like(s, "exp_avg", p);
    if (detail::host_kernel_applies(p, g, m)) {
      detail::lion_host(p, g, m, h);
    } else {
      detail::lion_reference(p, g, m, h);
    }
  });
}

}  // namespace deepspeed::optim
