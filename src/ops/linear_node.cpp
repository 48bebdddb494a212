#include "src/ops/linear_node.h"

#ifdef DS_WITH_CUDA_OPS

#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "src/ops/bias_gelu_kernel.h"
#include "src/ops/launch_support.h"
#include "src/ops/linear_gemms.h"

namespace deepspeed::ops::detail {
namespace {

// cuBLASLt's GEMMs need every operand contiguous; ATen's take transposed views as they are.
bool contiguous_rows(const at::Tensor& t) { return t.is_contiguous() && t.size(0) > 0 && t.size(1) > 0; }

}  // namespace

// Saves x and the weight, as autograd's addmm does.
at::Tensor linear_node_forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                               const at::Tensor& bias) {
  const c10::cuda::CUDAGuard guard(x.device());
  // The whole layer on one path, decided here. fp32 layers stay on LibTorch's GEMMs, which follow its TF32 setting.
  const LtChoice choice = x.scalar_type() == at::kFloat ? LtChoice::kHeuristic : tuned_gemm_choice();
  const bool tuned = choice != LtChoice::kHeuristic;
  const at::Tensor x2 = tuned ? x.reshape({-1, x.size(-1)}).contiguous() : x.reshape({-1, x.size(-1)});
  ctx->save_for_backward({x2, weight});
  ctx->saved_data["shape"] = x.sizes().vec();
  ctx->saved_data["choice"] = static_cast<std::int64_t>(choice);
  auto out_shape = x.sizes().vec();
  out_shape.back() = weight.size(0);
  if (tuned && contiguous_rows(x2) && weight.is_contiguous()) {
    at::Tensor y = at::empty({x2.size(0), weight.size(0)}, x2.options());
    if (linear_forward(x2, weight, bias, y, choice)) return y.view(out_shape);
  }
  return (bias.defined() ? at::addmm(bias, x2, weight.t()) : at::mm(x2, weight.t())).view(out_shape);
}

torch::autograd::variable_list linear_node_backward(torch::autograd::AutogradContext* ctx, const at::Tensor& dy_in,
                                                    bool with_bias, const at::Tensor& dbias_summed) {
  const auto saved = ctx->get_saved_variables();
  const at::Tensor& x2 = saved[0];
  const at::Tensor& weight = saved[1];
  const c10::cuda::CUDAGuard guard(x2.device());
  const auto choice = static_cast<LtChoice>(ctx->saved_data["choice"].toInt());
  const bool tuned = choice != LtChoice::kHeuristic;
  const at::Tensor dy = dy_in.reshape({-1, weight.size(0)}).contiguous();
  const bool lt_shapes = contiguous_rows(dy) && contiguous_rows(x2) && weight.is_contiguous();
  at::Tensor dx, dweight, dbias;
  if (ctx->needs_input_grad(0)) {
    if (tuned && lt_shapes) {
      dx = at::empty({dy.size(0), weight.size(1)}, dy.options());
      if (!linear_input_grad(dy, weight, dx, choice)) dx = at::Tensor();
    }
    if (!dx.defined()) dx = dy.mm(weight);
    dx = dx.view(ctx->saved_data["shape"].toIntVector());
  }
  const bool has_bias = with_bias && ctx->needs_input_grad(2);
  if (has_bias && dbias_summed.defined()) dbias = dbias_summed;
  // The bias gradient still to sum (none summed by the caller): DS_LINEAR_EPILOGUE=1 (and the timed GEMMs, unless
  // DS_LINEAR_BIAS_KERNEL=1) take both parameter gradients from one cuBLASLt GEMM that sums dy while it reads it;
  // without a bias, with it already summed, or with it left to the column-sum kernel, the weight GEMM alone.
  const bool sum_bias = has_bias && !dbias.defined();
  const bool bias_in_epilogue = sum_bias && !(tuned && bias_grad_kernel_requested());
  if (ctx->needs_input_grad(1) && lt_shapes && (tuned || (bias_in_epilogue && linear_epilogue_requested()))) {
    at::Tensor w_grad = at::empty(weight.sizes(), dy.options());
    at::Tensor b_grad = bias_in_epilogue ? at::empty({dy.size(1)}, dy.options()) : at::Tensor();
    if (weight_and_bias_grad(dy, x2, w_grad, b_grad, choice)) {
      dweight = w_grad;
      if (bias_in_epilogue) dbias = b_grad;
    }
  }
  if (ctx->needs_input_grad(1) && !dweight.defined()) dweight = dy.t().mm(x2);
  if (sum_bias && !dbias.defined()) {  // not from the caller nor the epilogue: the column-sum kernel
    const std::int64_t rows = dy.size(0), columns = dy.size(1);
    dbias = at::empty({columns}, dy.options());
    const std::int64_t parts = bias_gelu_backward_parts(rows, columns);
    at::Tensor workspace = at::empty({parts, columns}, dy.options().dtype(at::kFloat));  // freed in stream order
    // With no rows the fold writes zeros (bias_gelu's zero-rows case).
    check_launch(launch_bias_grad(element_type(dy.scalar_type()), element_type(dbias.scalar_type()), dy.data_ptr(),
                                  dbias.data_ptr(), workspace.data_ptr<float>(), parts, rows, columns,
                                  c10::cuda::getCurrentCUDAStream().stream()),
                 "linear");
  }
  return {dx, dweight, dbias};
}

}  // namespace deepspeed::ops::detail

#endif  // DS_WITH_CUDA_OPS
