#include "deepspeed/ops/add_layer_norm.h"

#include <cstdlib>
#include <string>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "deepspeed/util/error.h"

#ifdef DS_WITH_CUDA_OPS
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "src/ops/add_layer_norm_kernel.h"
#include "src/ops/launch_support.h"
#endif

namespace deepspeed::ops {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

void check_arguments(const at::Tensor& residual, const at::Tensor& branch, const at::Tensor& weight,
                     const at::Tensor& bias) {
  const std::string what = "deepspeed::ops::add_layer_norm: ";
  if (!residual.defined() || !branch.defined() || !weight.defined() || !bias.defined()) {
    throw UsageError(what + "residual, branch, weight and bias must all be defined");
  }
  if (residual.dim() < 1 || residual.sizes() != branch.sizes()) {
    throw UsageError(what + "residual and branch must have the same shape [*, C]");
  }
  const std::int64_t c = residual.size(-1);
  if (weight.dim() != 1 || weight.size(0) != c || bias.dim() != 1 || bias.size(0) != c) {
    throw UsageError(what + "weight and bias must be [C] with C = " + std::to_string(c));
  }
  if (!at::isFloatingType(residual.scalar_type()) || branch.scalar_type() != residual.scalar_type()) {
    throw UsageError(what + "residual and branch must have the same floating dtype");
  }
  if (weight.scalar_type() != bias.scalar_type() ||
      (weight.scalar_type() != residual.scalar_type() && weight.scalar_type() != at::kFloat)) {
    throw UsageError(what + "weight and bias must share one dtype: the inputs' or float32");
  }
}

// The type the reference computes the LayerNorm in: the wider of the inputs' and the parameters' (ATen's CUDA
// LayerNorm wants one type; with fp32 parameters this is what the kernel does too).
at::ScalarType compute_type(const at::Tensor& h, const at::Tensor& weight) {
  return at::promote_types(h.scalar_type(), weight.scalar_type());
}

struct Forward {
  at::Tensor h, y, mean, rstd;
};

Forward reference_forward(const at::Tensor& residual, const at::Tensor& branch, const at::Tensor& weight,
                          const at::Tensor& bias, double eps) {
  at::Tensor h = residual + branch;
  const auto ct = compute_type(h, weight);
  auto [y, mean, rstd] = at::native_layer_norm(h.to(ct), {h.size(-1)}, weight, bias, eps);
  return {h, y.to(h.scalar_type()), mean, rstd};
}

// d(h) = dh_out + LayerNorm's input gradient, d(weight), d(bias); dh_out may be undefined.
std::tuple<at::Tensor, at::Tensor, at::Tensor> reference_backward(const at::Tensor& dy, const at::Tensor& h,
                                                                  const at::Tensor& mean, const at::Tensor& rstd,
                                                                  const at::Tensor& weight, const at::Tensor& bias,
                                                                  const at::Tensor& dh_out) {
  const auto ct = compute_type(h, weight);
  auto [dx, dweight, dbias] = at::native_layer_norm_backward(dy.to(ct), h.to(ct), {h.size(-1)}, mean, rstd, weight,
                                                             bias, {true, true, true});
  if (dh_out.defined()) dx = dx + dh_out.to(ct);  // summed before the one rounding, as the kernel does
  return {dx.to(h.scalar_type()), dweight, dbias};
}

#ifdef DS_WITH_CUDA_OPS
Forward fused_forward(const at::Tensor& residual, const at::Tensor& branch, const at::Tensor& weight,
                      const at::Tensor& bias, double eps) {
  const c10::cuda::CUDAGuard guard(residual.device());
  const auto r = residual.contiguous(), b = branch.contiguous(), w = weight.contiguous(), bb = bias.contiguous();
  const std::int64_t columns = r.size(-1), rows = r.numel() / columns;
  Forward out{at::empty(r.sizes(), r.options()), at::empty(r.sizes(), r.options()),
              at::empty({rows}, r.options().dtype(at::kFloat)), at::empty({rows}, r.options().dtype(at::kFloat))};
  detail::check_launch(
      detail::launch_add_layer_norm_forward(
          detail::element_type(r.scalar_type()), detail::element_type(w.scalar_type()), r.data_ptr(), b.data_ptr(),
          w.data_ptr(), bb.data_ptr(), out.h.data_ptr(), out.y.data_ptr(), out.mean.data_ptr<float>(),
          out.rstd.data_ptr<float>(), rows, columns, static_cast<float>(eps),
          c10::cuda::getCurrentCUDAStream().stream()),
      "add_layer_norm");
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> fused_backward(const at::Tensor& dy, const at::Tensor& h,
                                                              const at::Tensor& mean, const at::Tensor& rstd,
                                                              const at::Tensor& weight, const at::Tensor& dh_out) {
  const c10::cuda::CUDAGuard guard(h.device());
  // Gradients arrive in the outputs' dtype (autograd casts them), but not necessarily contiguous.
  const auto d = dy.contiguous(), w = weight.contiguous();
  const auto other = dh_out.defined() ? dh_out.contiguous() : at::Tensor();
  const std::int64_t columns = h.size(-1), rows = h.numel() / columns;
  at::Tensor dh = at::empty(h.sizes(), h.options());
  at::Tensor dweight = at::empty({columns}, w.options()), dbias = at::empty({columns}, w.options());
  const std::int64_t parts = detail::add_layer_norm_backward_parts(rows, columns);
  at::Tensor workspace = at::empty({2, parts, columns}, h.options().dtype(at::kFloat));  // freed in stream order
  detail::check_launch(
      detail::launch_add_layer_norm_backward(
          detail::element_type(h.scalar_type()), detail::element_type(w.scalar_type()), d.data_ptr(), h.data_ptr(),
          mean.data_ptr<float>(), rstd.data_ptr<float>(), w.data_ptr(), other.defined() ? other.data_ptr() : nullptr,
          dh.data_ptr(), dweight.data_ptr(), dbias.data_ptr(), workspace.data_ptr<float>(), parts, rows, columns,
          c10::cuda::getCurrentCUDAStream().stream()),
      "add_layer_norm");
  return {dh, dweight, dbias};
}
#endif

// One autograd node for both paths: forward saves h (an output, so it costs no memory of its own), the fp32
// per-row mean and rstd, and the parameters; backward receives h's gradient from its other uses with y's.
class AddLayerNorm : public torch::autograd::Function<AddLayerNorm> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& residual, const at::Tensor& branch,
                               const at::Tensor& weight, const at::Tensor& bias, double eps, bool fused) {
#ifdef DS_WITH_CUDA_OPS
    Forward f = fused ? fused_forward(residual, branch, weight, bias, eps)
                      : reference_forward(residual, branch, weight, bias, eps);
#else
    (void)fused;
    Forward f = reference_forward(residual, branch, weight, bias, eps);
#endif
    // An h with no other use gets no gradient: keep it undefined rather than a tensor of zeros to read.
    ctx->set_materialize_grads(false);
    ctx->save_for_backward({f.h, f.mean, f.rstd, weight, bias});
    ctx->saved_data["fused"] = fused;
    return {f.h, f.y};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& h = saved[0];
    const at::Tensor& dh_out = grad_outputs[0];
    const at::Tensor& dy = grad_outputs[1];
    at::Tensor dh, dweight, dbias;
    if (!dy.defined()) {
      dh = dh_out;  // y unused: h's own gradient passes through, the parameters get none
    } else {
#ifdef DS_WITH_CUDA_OPS
      std::tie(dh, dweight, dbias) = ctx->saved_data["fused"].toBool()
                                         ? fused_backward(dy, h, saved[1], saved[2], saved[3], dh_out)
                                         : reference_backward(dy, h, saved[1], saved[2], saved[3], saved[4], dh_out);
#else
      std::tie(dh, dweight, dbias) = reference_backward(dy, h, saved[1], saved[2], saved[3], saved[4], dh_out);
#endif
    }
    // residual and branch enter only through their sum: one tensor serves both (autograd's own add does this).
    return {dh, dh, dweight, dbias, at::Tensor(), at::Tensor()};
  }
};

std::pair<at::Tensor, at::Tensor> apply(const at::Tensor& residual, const at::Tensor& branch,
                                        const at::Tensor& weight, const at::Tensor& bias, double eps, bool fused) {
  check_arguments(residual, branch, weight, bias);
  auto out = AddLayerNorm::apply(residual, branch, weight, bias, eps, fused);
  return {out[0], out[1]};
}

}  // namespace

bool add_layer_norm_reference_forced() {
  const char* v = std::getenv("DS_REFERENCE_ADD_LAYER_NORM");
  return v != nullptr && std::string(v) == "1";
}

bool add_layer_norm_is_fused(const at::Tensor& residual, const at::Tensor& branch, const at::Tensor& weight,
                             const at::Tensor& bias) {
#ifdef DS_WITH_CUDA_OPS
  if (add_layer_norm_reference_forced() || !residual.defined() || !branch.defined() || !weight.defined() ||
      !bias.defined() || !residual.is_cuda() || residual.dim() < 1) {
    return false;
  }
  const auto t = residual.scalar_type(), p = weight.scalar_type();
  const auto device = residual.device();
  const std::int64_t c = residual.size(-1);
  return (t == at::kBFloat16 || t == at::kHalf || t == at::kFloat) && branch.scalar_type() == t &&
         (p == t || p == at::kFloat) && bias.scalar_type() == p && branch.device() == device &&
         weight.device() == device && bias.device() == device && branch.sizes() == residual.sizes() &&
         weight.dim() == 1 && weight.size(0) == c && bias.dim() == 1 && bias.size(0) == c && c >= 1 &&
         c <= detail::kAddLayerNormMaxColumns;
#else
  (void)residual;
  (void)branch;
  (void)weight;
  (void)bias;
  return false;
#endif
}

std::pair<at::Tensor, at::Tensor> add_layer_norm(const at::Tensor& residual, const at::Tensor& branch,
                                                 const at::Tensor& weight, const at::Tensor& bias, double eps) {
  return apply(residual, branch, weight, bias, eps, add_layer_norm_is_fused(residual, branch, weight, bias));
}

std::pair<at::Tensor, at::Tensor> add_layer_norm_reference(const at::Tensor& residual, const at::Tensor& branch,
                                                           const at::Tensor& weight, const at::Tensor& bias,
                                                           double eps) {
  return apply(residual, branch, weight, bias, eps, false);
}

}  // namespace deepspeed::ops
