#pragma once
// Shared by cross_entropy_test (CPU) and cross_entropy_gpu_test: run a loss function and take its gradient.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

namespace deepspeed::ops::testing {

struct LossAndGrad {
  double loss;
  at::Tensor grad;  // fp32, on the CPU
};

/// Loss and d(scale · loss)/d(logits) through `fn(logits, targets)`.
template <typename Fn>
LossAndGrad loss_and_grad(Fn fn, const at::Tensor& logits, const at::Tensor& targets, double scale = 1.0) {
  auto x = logits.detach().clone().requires_grad_(true);
  auto loss = fn(x, targets);
  (loss * scale).backward();
  return {loss.template item<double>(), x.grad().to(at::kFloat).cpu()};
}

}  // namespace deepspeed::ops::testing
