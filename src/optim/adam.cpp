// Adam and AdamW: the fused multi-tensor path and the per-tensor reference it is tested against.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <tuple>
#include <utility>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "deepspeed/optim/optimizer.h"
#include "src/optim/adam_internal.h"

namespace deepspeed::optim {

// Moments live beside the parameter, in its dtype and device; "step" is a float32 tensor on the same device
// because the fused CUDA kernel reads it there (the same layout torch.optim uses, so states interchange).
void init_adam_state(ParamState& s, const at::Tensor& p, bool amsgrad) {
  if (s.count("exp_avg")) return;
  s["step"] = at::zeros({}, p.options().dtype(at::kFloat));
  s["exp_avg"] = at::zeros_like(p, at::MemoryFormat::Preserve);
  s["exp_avg_sq"] = at::zeros_like(p, at::MemoryFormat::Preserve);
  if (amsgrad) s["max_exp_avg_sq"] = at::zeros_like(p, at::MemoryFormat::Preserve);
}

namespace {

void reference_adam_step(at::Tensor& p, ParamState& s, const Hyper& h, double grad_scale = 1.0) {
  at::Tensor grad = p.grad().to(p.scalar_type());
  if (grad_scale != 1.0) grad.mul_(grad_scale);  // in place when it is grad() itself, as the engine would
  auto& step = s["step"];
  step.add_(1);
  const double t = step.item<double>();
  if (h.weight_decay != 0) {
    if (h.adam_w_mode) p.mul_(1 - h.lr * h.weight_decay);
    else grad = grad.add(p, h.weight_decay);
  }
  auto& m = s["exp_avg"];
  auto& v = s["exp_avg_sq"];
  m.lerp_(grad, 1 - h.beta1);
  v.mul_(h.beta2).addcmul_(grad, grad, 1 - h.beta2);
  const double bc1 = h.bias_correction ? 1 - std::pow(h.beta1, t) : 1.0;
  const double bc2 = h.bias_correction ? 1 - std::pow(h.beta2, t) : 1.0;
  at::Tensor second = v;
  if (h.amsgrad) {
    auto& vmax = s["max_exp_avg_sq"];
    at::maximum_out(vmax, vmax, v);
    second = vmax;
  }
  const auto denom = (second.sqrt() / std::sqrt(bc2)).add_(h.eps);
  p.addcdiv_(m, denom, -h.lr / bc1);
}

}  // namespace

void fused_adam_step(const std::vector<at::Tensor>& params, const std::vector<ParamState*>& states, const Hyper& h,
                     double grad_scale, std::int64_t upcast_slice, const std::vector<at::Tensor>& copies,
                     const at::Tensor& device_scale) {
  at::NoGradGuard no_grad;
  // A factor on the device goes to the kernel as fp32 (what it would round a host factor to); every other
  // path reads it once, here or at the first bucket the kernel does not take.
  at::Tensor kernel_scale;
  if (device_scale.defined()) {
    if (device_scale.is_cuda()) kernel_scale = device_scale.to(at::kFloat);
    else grad_scale = device_scale.item<double>();
  }
  auto read_scale = [&] {
    if (kernel_scale.defined()) grad_scale = device_scale.item<double>();
    kernel_scale = at::Tensor();
  };
  // The fused kernels need every list to share one device and dtype.
  struct Lists {
    std::vector<at::Tensor> params, grads, m, v, vmax, steps;
    void add(const at::Tensor& p, const at::Tensor& g, ParamState& s, bool amsgrad) {
      params.push_back(p);
      grads.push_back(g);
      m.push_back(s.at("exp_avg"));
      v.push_back(s.at("exp_avg_sq"));
      if (amsgrad) vmax.push_back(s.at("max_exp_avg_sq"));
      steps.push_back(s.at("step"));
    }
    std::int64_t numel = 0;  // of the up-cast gradients held
  };
  // at::_fused_adam(w)_ is overloaded (double lr / Tensor lr); pick the double-lr form explicitly.
  using Fn = void (*)(at::TensorList, at::TensorList, at::TensorList, at::TensorList, at::TensorList,
                      at::TensorList, double, double, double, double, double, bool, bool,
                      const std::optional<at::Tensor>&, const std::optional<at::Tensor>&);
  const Fn fn = h.adam_w_mode ? static_cast<Fn>(&at::_fused_adamw_) : static_cast<Fn>(&at::_fused_adam_);
  auto launch = [&](Lists& l) {
    if (!l.params.empty()) {
      fn(l.params, l.grads, l.m, l.v, l.vmax, l.steps, h.lr, h.beta1, h.beta2, h.weight_decay, h.eps, h.amsgrad,
         /*maximize=*/false, std::nullopt, std::nullopt);
    }
    l = Lists{};
  };
  auto copy_of = [&](std::size_t i) { return i < copies.size() ? copies[i] : at::Tensor(); };
  auto write_copy = [&](std::size_t i) {
    if (at::Tensor copy = copy_of(i); copy.defined()) copy.copy_(params[i]);
  };
  std::map<std::tuple<int, int, int>, std::vector<std::size_t>> buckets;
  for (std::size_t i = 0; i < params.size(); ++i) {
    at::Tensor p = params[i];
    init_adam_state(*states[i], p, h.amsgrad);
    if (!h.bias_correction) {
      read_scale();
      reference_adam_step(p, *states[i], h, grad_scale);
      write_copy(i);
      continue;
    }
    buckets[{static_cast<int>(p.device().type()), p.device().index(), static_cast<int>(p.scalar_type())}].push_back(i);
  }
  for (const auto& [key, members] : buckets) {
    std::vector<at::Tensor> steps;
    for (std::size_t i : members) steps.push_back(states[i]->at("step"));
    at::_foreach_add_(steps, 1);
    {
      std::vector<at::Tensor> ps, gs, cs;
      std::vector<ParamState*> ss;
      for (std::size_t i : members) {
        ps.push_back(params[i]);
        gs.push_back(params[i].grad());
        ss.push_back(states[i]);
        cs.push_back(copy_of(i));
      }
      // One pass on the device: the gradient scaled as it is read, the model's copy written beside the master.
      const bool on_kernel_device = kernel_scale.defined() && kernel_scale.device() == ps.front().device();
      if (!on_kernel_device) read_scale();
      if (device_adam_step(ps, gs, ss, cs, h, grad_scale, on_kernel_device ? kernel_scale.data_ptr<float>() : nullptr)) {
        continue;
      }
    }
    read_scale();
    Lists as_is, upcast;
    for (std::size_t i : members) {
      const at::Tensor& p = params[i];
      const at::Tensor grad = p.grad();
      ParamState& s = *states[i];
      if (grad.scalar_type() == p.scalar_type()) {
        if (grad_scale != 1.0) at::Tensor(grad).mul_(grad_scale);
        as_is.add(p, grad, s, h.amsgrad);
        continue;
      }
      // Slices of one flat tensor share its step count, advanced once above.
      const at::Tensor flat_p = p.view({-1}), flat_g = grad.reshape({-1});
      for (std::int64_t offset = 0; offset < p.numel(); offset += upcast_slice) {
        const std::int64_t n = std::min(upcast_slice, p.numel() - offset);
        if (upcast.numel + n > upcast_slice) launch(upcast);  // frees that batch's copies first
        at::Tensor g = flat_g.narrow(0, offset, n).to(p.scalar_type());
        if (grad_scale != 1.0) g.mul_(grad_scale);
        ParamState slice{{"step", s.at("step")},
                         {"exp_avg", s.at("exp_avg").view({-1}).narrow(0, offset, n)},
                         {"exp_avg_sq", s.at("exp_avg_sq").view({-1}).narrow(0, offset, n)}};
        if (h.amsgrad) slice["max_exp_avg_sq"] = s.at("max_exp_avg_sq").view({-1}).narrow(0, offset, n);
        upcast.add(flat_p.narrow(0, offset, n), g, slice, h.amsgrad);
        upcast.numel += n;
      }
    }
    launch(as_is);
    launch(upcast);
    for (std::size_t i : members) write_copy(i);
  }
}

bool FusedAdam::take_model_copies(std::vector<std::vector<at::Tensor>> copies) {
  if (copies.size() != groups_.size()) throw std::invalid_argument("FusedAdam: model copies for another number of groups");
  for (std::size_t gi = 0; gi < groups_.size(); ++gi) {
    if (copies[gi].size() != groups_[gi].params.size()) {
      throw std::invalid_argument("FusedAdam: model copies for another number of parameters");
    }
    for (std::size_t i = 0; i < copies[gi].size(); ++i) {
      if (copies[gi][i].defined() && copies[gi][i].numel() != groups_[gi].params[i].numel()) {
        throw std::invalid_argument("FusedAdam: a model copy's size differs from its parameter's");
      }
    }
  }
  model_copies_ = std::move(copies);
  return true;
}

void FusedAdam::step() {
  step_selected([](std::size_t, std::size_t) { return true; }, /*last=*/true);
}

// Every parameter's update is elementwise over its own tensors and step count, so a step split into parts
// computes what one launch over all of them does.
bool FusedAdam::step_part(const std::vector<std::vector<bool>>& part, bool last) {
  step_selected([&](std::size_t g, std::size_t i) { return g < part.size() && i < part[g].size() && part[g][i]; },
                last);
  return true;
}

void FusedAdam::step_selected(const std::function<bool(std::size_t, std::size_t)>& selected, bool last) {
  const double grad_scale = grad_scale_;
  const at::Tensor device_scale = device_grad_scale_;
  if (last) {
    grad_scale_ = 1.0;
    device_grad_scale_ = at::Tensor();
  }
  for (std::size_t gi = 0; gi < groups_.size(); ++gi) {
    std::vector<at::Tensor> params, copies;
    std::vector<ParamState*> states;
    for (std::size_t i = 0; i < groups_[gi].params.size(); ++i) {
      if (!selected(gi, i) || !groups_[gi].params[i].grad().defined()) continue;
      params.push_back(groups_[gi].params[i]);
      states.push_back(&state(gi, i));
      copies.push_back(model_copies_.empty() ? at::Tensor() : model_copies_[gi][i]);
    }
    if (params.empty()) continue;
    fused_adam_step(params, states, groups_[gi].hyper, grad_scale, kUpcastSliceNumel, copies, device_scale);
  }
}

std::string TorchAdam::name() const {
  return groups_.empty() || groups_[0].hyper.adam_w_mode ? "AdamW" : "Adam";
}

void TorchAdam::step() {
  at::NoGradGuard no_grad;
  for (std::size_t gi = 0; gi < groups_.size(); ++gi) {
    auto& group = groups_[gi];
    for (std::size_t i = 0; i < group.params.size(); ++i) {
      auto& p = group.params[i];
      if (!p.grad().defined()) continue;
      auto& s = state(gi, i);
      init_adam_state(s, p, group.hyper.amsgrad);
      reference_adam_step(p, s, group.hyper);
    }
  }
}

}  // namespace deepspeed::optim
