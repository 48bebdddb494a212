#include "deepspeed/ops/bias_gelu.h"

#include <string>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "deepspeed/util/error.h"
#include "src/util/env.h"

#ifdef DS_WITH_CUDA_OPS
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "src/ops/bias_gelu_kernel.h"
#include "src/ops/launch_support.h"
#endif

namespace deepspeed::ops {
namespace {

void check_arguments(const at::Tensor& x, const at::Tensor& bias) {
  const std::string what = "deepspeed::ops::bias_gelu: ";
  if (!x.defined() || !bias.defined()) throw UsageError(what + "x and bias must both be defined");
  if (x.dim() < 1 || bias.dim() != 1 || bias.size(0) != x.size(-1)) {
    throw UsageError(what + "x must be [*, N] and bias [N]");
  }
  if (!at::isFloatingType(x.scalar_type()) ||
      (bias.scalar_type() != x.scalar_type() && bias.scalar_type() != at::kFloat)) {
    throw UsageError(what + "x must be floating and bias of x's dtype or float32");
  }
}

at::Tensor reference(const at::Tensor& x, const at::Tensor& bias) {
  const auto ct = at::promote_types(x.scalar_type(), at::kFloat);
  const at::Tensor h = (x.to(ct) + bias.to(ct)).to(x.scalar_type());
  return at::gelu(h, "tanh");
}

#ifdef DS_WITH_CUDA_OPS
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Saves x (the GEMM's output, which the unfused path would keep as GELU's input h instead: the same bytes) and
// the bias; backward recomputes h.
class BiasGelu : public torch::autograd::Function<BiasGelu> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& bias) {
    const c10::cuda::CUDAGuard guard(x.device());
    const at::Tensor xc = x.contiguous(), b = bias.contiguous();
    const std::int64_t columns = xc.size(-1), rows = xc.numel() / columns;
    at::Tensor y = at::empty(xc.sizes(), xc.options());
    detail::check_launch(
        detail::launch_bias_gelu_forward(detail::element_type(xc.scalar_type()), detail::element_type(b.scalar_type()),
                                         xc.data_ptr(), b.data_ptr(), y.data_ptr(), rows, columns,
                                         c10::cuda::getCurrentCUDAStream().stream()),
        "bias_gelu");
    ctx->save_for_backward({xc, b});
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& bias = saved[1];
    const c10::cuda::CUDAGuard guard(x.device());
    const at::Tensor dy = grad_outputs[0].contiguous();
    const std::int64_t columns = x.size(-1), rows = x.numel() / columns;
    at::Tensor dx = at::empty(x.sizes(), x.options());
    at::Tensor dbias = at::empty({columns}, bias.options());
    const std::int64_t parts = detail::bias_gelu_backward_parts(rows, columns);
    at::Tensor workspace = at::empty({parts, columns}, x.options().dtype(at::kFloat));  // freed in stream order
    detail::check_launch(
        detail::launch_bias_gelu_backward(detail::element_type(x.scalar_type()),
                                          detail::element_type(bias.scalar_type()), dy.data_ptr(), x.data_ptr(),
                                          bias.data_ptr(), dx.data_ptr(), dbias.data_ptr(), workspace.data_ptr<float>(),
                                          parts, rows, columns, c10::cuda::getCurrentCUDAStream().stream()),
        "bias_gelu");
    return {dx, dbias};
  }
};
#endif

}  // namespace

bool bias_gelu_reference_forced() {
  return util::env_is("DS_REFERENCE_BIAS_GELU");
}

bool bias_gelu_is_fused(const at::Tensor& x, const at::Tensor& bias) {
#ifdef DS_WITH_CUDA_OPS
  if (bias_gelu_reference_forced() || !x.defined() || !bias.defined() || !x.is_cuda() || x.dim() < 1) return false;
  const auto t = x.scalar_type(), p = bias.scalar_type();
  return (t == at::kBFloat16 || t == at::kHalf || t == at::kFloat) && (p == t || p == at::kFloat) &&
         bias.device() == x.device() && bias.dim() == 1 && bias.size(0) == x.size(-1) && x.size(-1) >= 1 &&
         x.size(-1) <= INT32_MAX;
#else
  (void)x;
  (void)bias;
  return false;
#endif
}

at::Tensor bias_gelu(const at::Tensor& x, const at::Tensor& bias) {
  check_arguments(x, bias);
#ifdef DS_WITH_CUDA_OPS
  if (bias_gelu_is_fused(x, bias)) return BiasGelu::apply(x, bias);
#endif
  return reference(x, bias);
}

at::Tensor bias_gelu_reference(const at::Tensor& x, const at::Tensor& bias) {
  check_arguments(x, bias);
  return reference(x, bias);
}

}  // namespace deepspeed::ops
