#pragma once
/// \file
/// FusedLamb: DeepSpeed's LAMB (arXiv:1904.00962) with the semantics of csrc/lamb/fused_lamb_cuda_kernel.cu,
/// written with LibTorch tensor ops so it runs on CPU and CUDA (no host synchronisation per step on CUDA).
///
/// Per parameter p with gradient g (divided by the grad scale), at step t:
///   m = β1·m + (1-β1)·g;   v = β2·v + (1-β2)·g²
///   u = m / (sqrt(v) + eps) + wd·p          (eps_inside_sqrt: m / sqrt(v + eps) + wd·p)
///   coeff = clamp(‖p‖ / ‖u‖, min_coeff, max_coeff), or 1 when either norm is 0
///   p -= lr · sqrt(1-β2^t)/(1-β1^t) · coeff · u   (without bias correction: lr · coeff · u)
/// Note that, as in DeepSpeed's kernel, the moments enter u uncorrected and the bias correction is folded
/// into the step size, so it also scales the weight-decay term; ‖p‖ is taken before the update.

#include <string>
#include <vector>

#include "deepspeed/optim/optimizer.h"

namespace deepspeed::optim {

/// State per parameter: "step" (0-dim fp32 CPU tensor), "exp_avg", "exp_avg_sq" (parameter's dtype/device).
/// Hyperparameters used: lr, beta1, beta2, eps, weight_decay, bias_correction, max_coeff, min_coeff.
class FusedLamb : public Optimizer {
 public:
  /// Throws std::invalid_argument when a group asks for amsgrad (DeepSpeed: not supported in FusedLamb).
  explicit FusedLamb(std::vector<ParamGroup> groups, bool eps_inside_sqrt = false);

  std::string name() const override { return "FusedLamb"; }

  /// Updates every parameter whose grad() is defined. Gradients may be a lower-precision floating type than
  /// the parameter (fp16/bf16 grads with fp32 params); the math runs in the parameter's dtype.
  void step() override { step(1.0); }

  /// DeepSpeed's step(scale=...): gradients are divided by `grad_scale` before use (a loss scale).
  void step(double grad_scale);

  /// Trust ratios of the last step, one per updated parameter in group/parameter order
  /// (DeepSpeed's get_lamb_coeffs()). Synchronises with the device.
  std::vector<double> lamb_coeffs() const;

 private:
  bool eps_inside_sqrt_;
  std::vector<at::Tensor> coeffs_;
};

}  // namespace deepspeed::optim
