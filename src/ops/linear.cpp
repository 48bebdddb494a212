#include "deepspeed/ops/linear.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "src/ops/linear_arguments.h"
#include "src/util/env.h"

#ifdef DS_WITH_CUDA_OPS
#include "src/ops/linear_gemms.h"
#include "src/ops/linear_node.h"
#endif

namespace deepspeed::ops {
namespace {

#ifdef DS_WITH_CUDA_OPS
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class Linear : public torch::autograd::Function<Linear> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const at::Tensor& bias) {
    return detail::linear_node_forward(ctx, x, weight, bias);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    return detail::linear_node_backward(ctx, grad_outputs[0], /*with_bias=*/true);
  }
};

// Timed GEMMs only: a layer without a bias.
class LinearWithoutBias : public torch::autograd::Function<LinearWithoutBias> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight) {
    return detail::linear_node_forward(ctx, x, weight, at::Tensor());
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto grads = detail::linear_node_backward(ctx, grad_outputs[0], /*with_bias=*/false);
    return {grads[0], grads[1]};
  }
};
#endif

}  // namespace

bool linear_reference_forced() {
  return util::env_is("DS_REFERENCE_LINEAR");
}

namespace {

// x, weight and (if defined) bias on one CUDA device, in one dtype the kernels take, with CUDA support built.
bool on_one_device(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
#ifdef DS_WITH_CUDA_OPS
  const auto t = x.scalar_type();
  return x.is_cuda() && weight.device() == x.device() && (t == at::kBFloat16 || t == at::kHalf || t == at::kFloat) &&
         weight.scalar_type() == t && (!bias.defined() || (bias.device() == x.device() && bias.scalar_type() == t)) &&
         !linear_reference_forced();
#else
  (void)x, (void)weight, (void)bias;
  return false;
#endif
}

}  // namespace

bool linear_is_fused(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  return bias.defined() && on_one_device(x, weight, bias);
}

bool linear_is_tuned(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
#ifdef DS_WITH_CUDA_OPS
  return detail::gemm_tuning_requested() && x.scalar_type() != at::kFloat && on_one_device(x, weight, bias);
#else
  (void)x, (void)weight, (void)bias;
  return false;
#endif
}

at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  detail::check_linear_arguments("linear", x, weight, bias);
#ifdef DS_WITH_CUDA_OPS
  if (linear_is_fused(x, weight, bias) || linear_is_tuned(x, weight, bias)) {
    return bias.defined() ? Linear::apply(x, weight, bias) : LinearWithoutBias::apply(x, weight);
  }
#endif
  return at::linear(x, weight, bias);
}

}  // namespace deepspeed::ops
