#include "src/optim/adagrad_lion_kernels.h"

#include <cmath>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>

namespace deepspeed::optim::detail {

namespace {

constexpr std::int64_t kGrain = 1 << 14;  // elements per task: large enough that scheduling costs nothing

float to_float(float x) { return x; }
float to_float(c10::BFloat16 x) { return static_cast<float>(x); }

// Calls body(g) with g the gradient's data as float or BFloat16.
template <typename Body>
void with_gradient(const at::Tensor& g, Body body) {
  if (g.scalar_type() == at::kBFloat16) {
    body(g.const_data_ptr<c10::BFloat16>());
  } else {
    body(g.const_data_ptr<float>());
  }
}

}  // namespace

void adagrad_reference(at::Tensor& p, at::Tensor g, at::Tensor& sum, const Hyper& h) {
  if (g.scalar_type() != p.scalar_type()) g = g.to(p.scalar_type());
  if (h.weight_decay != 0) g = g.add(p, h.weight_decay);
  sum.addcmul_(g, g, 1);
  p.addcdiv_(g, sum.sqrt().add_(h.eps), -h.lr);
}

void lion_reference(at::Tensor& p, at::Tensor g, at::Tensor& momentum, const Hyper& h) {
  if (g.scalar_type() != p.scalar_type()) g = g.to(p.scalar_type());
  const at::Tensor direction = momentum.mul(h.beta1).add_(g, 1 - h.beta1).sign_();
  if (h.weight_decay != 0) p.mul_(1 - h.lr * h.weight_decay);
  p.add_(direction, -h.lr);
  momentum.mul_(h.beta2).add_(g, 1 - h.beta2);
}

bool host_kernel_applies(const at::Tensor& p, const at::Tensor& g, const at::Tensor& state) {
  const auto host_fp32 = [](const at::Tensor& t) {
    return t.is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous();
  };
  return host_fp32(p) && host_fp32(state) && state.numel() == p.numel() && g.is_cpu() && g.is_contiguous() &&
         g.numel() == p.numel() && (g.scalar_type() == at::kFloat || g.scalar_type() == at::kBFloat16);
}

void adagrad_host(at::Tensor& p, const at::Tensor& g, at::Tensor& sum, const Hyper& h) {
  float* pp = p.data_ptr<float>();
  float* ss = sum.data_ptr<float>();
  const float wd = static_cast<float>(h.weight_decay), eps = static_cast<float>(h.eps), lr = static_cast<float>(h.lr);
  with_gradient(g, [&](const auto* gg) {
    at::parallel_for(0, p.numel(), kGrain, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) {
        const float grad = wd != 0 ? to_float(gg[i]) + wd * pp[i] : to_float(gg[i]);
        const float sum = ss[i] + grad * grad;
        ss[i] = sum;
        pp[i] -= lr * (grad / (std::sqrt(sum) + eps));
      }
    });
  });
}

void lion_host(at::Tensor& p, const at::Tensor& g, at::Tensor& momentum, const Hyper& h) {
  float* pp = p.data_ptr<float>();
  float* mm = momentum.data_ptr<float>();
  const float b1 = static_cast<float>(h.beta1), b2 = static_cast<float>(h.beta2);
  const float keep1 = static_cast<float>(1 - h.beta1), keep2 = static_cast<float>(1 - h.beta2);
  const float lr = static_cast<float>(h.lr), decay = static_cast<float>(1 - h.lr * h.weight_decay);
  with_gradient(g, [&](const auto* gg) {
    at::parallel_for(0, p.numel(), kGrain, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) {
        const float grad = to_float(gg[i]);
        const float m = mm[i];
        const float c = m * b1 + grad * keep1;
        const float step = c > 0 ? lr : (c < 0 ? -lr : 0.0f);  // lr·sign(c), sign(0) = 0
        pp[i] = pp[i] * decay - step;                           // decay 1 without weight decay: exact
        mm[i] = m * b2 + grad * keep2;
      }
    });
  });
}

}  // namespace deepspeed::optim::detail
