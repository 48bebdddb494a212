// Adagrad and Lion (contract and formulas in adagrad_lion.h).
#include "deepspeed/optim/adagrad_lion.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "deepspeed/util/strings.h"
#include "src/optim/adagrad_lion_kernels.h"

namespace deepspeed::optim {

namespace {

// The state tensor `key` of one parameter, zeros like it on first use.
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

// One step of every parameter with a gradient, its step counted and its state tensor `key` created on first
// use: the one-pass host kernel where it applies (offloaded fp32 masters), the LibTorch-op reference elsewhere.
template <typename HostKernel, typename Reference>
void step_each(Optimizer& optimizer, const std::string& key, HostKernel host, Reference reference) {
  at::NoGradGuard no_grad;
  auto& groups = optimizer.param_groups();
  for (std::size_t gi = 0; gi < groups.size(); ++gi) {
    for (std::size_t i = 0; i < groups[gi].params.size(); ++i) {
      at::Tensor& p = groups[gi].params[i];
      if (!p.grad().defined()) continue;
      ParamState& s = optimizer.state(gi, i);
      count_step(s, p);
      at::Tensor& state = state_like(s, key, p);
      if (detail::host_kernel_applies(p, p.grad(), state)) {
        host(p, p.grad(), state, groups[gi].hyper);
      } else {
        reference(p, p.grad(), state, groups[gi].hyper);
      }
    }
  }
}

}  // namespace

void Adagrad::step() { step_each(*this, "sum", detail::adagrad_host, detail::adagrad_reference); }

std::string Adagrad::momentum_repr() const { return util::py_float_list(std::vector<double>(groups_.size(), 0.0)); }

void Lion::step() { step_each(*this, "exp_avg", detail::lion_host, detail::lion_reference); }

}  // namespace deepspeed::optim
