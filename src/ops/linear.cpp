#include "deepspeed/ops/linear.h"

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
#include "src/ops/linear_gemms.h"
#endif

namespace deepspeed::ops {
namespace {

void check_arguments(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  const std::string what = "deepspeed::ops::linear: ";
  if (!x.defined() || !weight.defined()) throw UsageError(what + "x and weight must be defined");
  if (x.dim() < 1 || weight.dim() != 2 || weight.size(1) != x.size(-1)) {
    throw UsageError(what + "x must be [*, in] and weight [out, in]");
  }
  if (bias.defined() && (bias.dim() != 1 || bias.size(0) != weight.size(0))) {
    throw UsageError(what + "bias must be [out]");
  }
}

#ifdef DS_WITH_CUDA_OPS
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// cuBLASLt's GEMMs need every operand contiguous; ATen's take transposed views as they are.
bool contiguous_rows(const at::Tensor& t) { return t.is_contiguous() && t.size(0) > 0 && t.size(1) > 0; }

// The layer's forward and backward, shared by the node with a bias and the one without (an autograd node's
// inputs must all be defined tensors). Saves x and the weight, as autograd's addmm does.
struct LinearGemms {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const at::Tensor& bias) {
    const c10::cuda::CUDAGuard guard(x.device());
    const bool tuned = detail::gemm_tuning_requested();  // the whole layer on one path, decided here
    const at::Tensor x2 = tuned ? x.reshape({-1, x.size(-1)}).contiguous() : x.reshape({-1, x.size(-1)});
    ctx->save_for_backward({x2, weight});
    ctx->saved_data["shape"] = x.sizes().vec();
    ctx->saved_data["tuned"] = tuned;
    auto out_shape = x.sizes().vec();
    out_shape.back() = weight.size(0);
    if (tuned && contiguous_rows(x2) && weight.is_contiguous()) {
      at::Tensor y = at::empty({x2.size(0), weight.size(0)}, x2.options());
      if (detail::linear_forward(x2, weight, bias, y, detail::LtChoice::kTimed)) return y.view(out_shape);
    }
    return (bias.defined() ? at::addmm(bias, x2, weight.t()) : at::mm(x2, weight.t())).view(out_shape);
  }

  // Returns {dx, dweight, dbias}; with_bias: the node has a bias input (its gradient asked for or not).
  static variable_list backward(AutogradContext* ctx, const variable_list& grad_outputs, bool with_bias) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& x2 = saved[0];
    const at::Tensor& weight = saved[1];
    const c10::cuda::CUDAGuard guard(x2.device());
    const bool tuned = ctx->saved_data["tuned"].toBool();
    const auto choice = tuned ? detail::LtChoice::kTimed : detail::LtChoice::kHeuristic;
    const at::Tensor dy = grad_outputs[0].reshape({-1, weight.size(0)}).contiguous();
    const bool lt_shapes = contiguous_rows(dy) && contiguous_rows(x2) && weight.is_contiguous();
    at::Tensor dx, dweight, dbias;
    if (ctx->needs_input_grad(0)) {
      if (tuned && lt_shapes) {
        dx = at::empty({dy.size(0), weight.size(1)}, dy.options());
        if (!detail::linear_input_grad(dy, weight, dx, choice)) dx = at::Tensor();
      }
      if (!dx.defined()) dx = dy.mm(weight);
      dx = dx.view(ctx->saved_data["shape"].toIntVector());
    }
    // DS_LINEAR_EPILOGUE=1 (and DS_GEMM_TUNED=1): both parameter gradients from one cuBLASLt GEMM that sums dy
    // while it reads it; without a bias, the weight gradient's GEMM alone.
    const bool has_bias = with_bias && ctx->needs_input_grad(2);
    if (ctx->needs_input_grad(1) && lt_shapes && (tuned || (has_bias && detail::linear_epilogue_requested()))) {
      at::Tensor w_grad = at::empty(weight.sizes(), dy.options());
      at::Tensor b_grad = has_bias ? at::empty({dy.size(1)}, dy.options()) : at::Tensor();
      if (detail::weight_and_bias_grad(dy, x2, w_grad, b_grad, choice)) return {dx, w_grad, b_grad};
    }
    if (ctx->needs_input_grad(1)) dweight = dy.t().mm(x2);
    if (has_bias) {
      const std::int64_t rows = dy.size(0), columns = dy.size(1);
      dbias = at::empty({columns}, dy.options());
      const std::int64_t parts = detail::bias_gelu_backward_parts(rows, columns);
      at::Tensor workspace = at::empty({parts, columns}, dy.options().dtype(at::kFloat));  // freed in stream order
      // With no rows the fold writes zeros (bias_gelu's zero-rows case).
      detail::check_launch(detail::launch_bias_grad(detail::element_type(dy.scalar_type()),
                                                    detail::element_type(dbias.scalar_type()), dy.data_ptr(),
                                                    dbias.data_ptr(), workspace.data_ptr<float>(), parts, rows,
                                                    columns, c10::cuda::getCurrentCUDAStream().stream()),
                           "linear");
    }
    return {dx, dweight, dbias};
  }
};

class Linear : public torch::autograd::Function<Linear> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const at::Tensor& bias) {
    return LinearGemms::forward(ctx, x, weight, bias);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    return LinearGemms::backward(ctx, grad_outputs, /*with_bias=*/true);
  }
};

// DS_GEMM_TUNED=1 only: a layer without a bias.
class LinearWithoutBias : public torch::autograd::Function<LinearWithoutBias> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight) {
    return LinearGemms::forward(ctx, x, weight, at::Tensor());
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto grads = LinearGemms::backward(ctx, grad_outputs, /*with_bias=*/false);
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
  check_arguments(x, weight, bias);
#ifdef DS_WITH_CUDA_OPS
  if (linear_is_fused(x, weight, bias) || linear_is_tuned(x, weight, bias)) {
    return bias.defined() ? Linear::apply(x, weight, bias) : LinearWithoutBias::apply(x, weight);
  }
#endif
  return at::linear(x, weight, bias);
}

}  // namespace deepspeed::ops
