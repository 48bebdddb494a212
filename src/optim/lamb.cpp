// FusedLamb with DeepSpeed's kernel semantics (see lamb.h for the formulas), as tensor ops.
#include "deepspeed/optim/lamb.h"

#include <cmath>
#include <stdexcept>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

namespace deepspeed::optim {

FusedLamb::FusedLamb(std::vector<ParamGroup> groups, bool eps_inside_sqrt)
    : Optimizer(std::move(groups)), eps_inside_sqrt_(eps_inside_sqrt) {
  for (const auto& g : groups_) {
    if (g.hyper.amsgrad) throw std::invalid_argument("FusedLamb does not support the AMSGrad variant");
  }
}

void FusedLamb::step(double grad_scale) {
  at::NoGradGuard no_grad;
  coeffs_.clear();
  for (std::size_t gi = 0; gi < groups_.size(); ++gi) {
    const Hyper& h = groups_[gi].hyper;
    for (std::size_t i = 0; i < groups_[gi].params.size(); ++i) {
      at::Tensor& p = groups_[gi].params[i];
      if (!p.grad().defined()) continue;
      ParamState& s = state(gi, i);
      if (!s.count("exp_avg")) {
        // The step count stays on the host: the step size is folded there, and reading it never waits on
        // the device.
        s["step"] = at::zeros({}, at::TensorOptions().dtype(at::kFloat));
        s["exp_avg"] = at::zeros_like(p, at::MemoryFormat::Preserve);
        s["exp_avg_sq"] = at::zeros_like(p, at::MemoryFormat::Preserve);
      }
      s["step"].add_(1);
      const double t = s["step"].item<double>();
      const double step_size = h.bias_correction
                                   ? h.lr * std::sqrt(1.0 - std::pow(h.beta2, t)) / (1.0 - std::pow(h.beta1, t))
                                   : h.lr;

      at::Tensor g = p.grad().to(p.scalar_type());
      if (grad_scale != 1.0) g = g / grad_scale;
      at::Tensor& m = s["exp_avg"];
      at::Tensor& v = s["exp_avg_sq"];
      // DeepSpeed's kernel takes β1, β2, eps as fp32 arguments and forms 1-β in fp32; doing the same keeps
      // the moments (and so the trust ratio) on its trajectory rather than ~1e-6 away.
      const float b1 = static_cast<float>(h.beta1), b2 = static_cast<float>(h.beta2);
      const float eps = static_cast<float>(h.eps);
      m.mul_(b1).add_(g, 1.0f - b1);
      v.mul_(b2).addcmul_(g, g, 1.0f - b2);
      at::Tensor denom = eps_inside_sqrt_ ? (v + eps).sqrt_() : v.sqrt().add_(eps);
      at::Tensor update = m / denom;
      if (h.weight_decay != 0) update.add_(p, h.weight_decay);

      const at::Tensor w_norm = p.norm();
      const at::Tensor u_norm = update.norm();
      // DeepSpeed clamps to max first, then to min, and leaves the ratio at 1 when either norm is zero (a
      // freshly zero-initialised weight, or an all-zero update).
      const at::Tensor ratio = (w_norm / u_norm).clamp_max(h.max_coeff).clamp_min(h.min_coeff);
      const at::Tensor coeff = at::where(w_norm.ne(0).logical_and(u_norm.ne(0)), ratio, at::ones_like(ratio));
      p.sub_(update.mul_(coeff * step_size));
      coeffs_.push_back(coeff);
    }
  }
}

std::vector<double> FusedLamb::lamb_coeffs() const {
  std::vector<double> out;
  out.reserve(coeffs_.size());
  for (const auto& c : coeffs_) out.push_back(c.item<double>());
  return out;
}

}  // namespace deepspeed::optim
