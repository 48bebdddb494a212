#include "deepspeed/ops/add_layer_norm.h"

#include <optional>
#include <string>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "deepspeed/util/error.h"
#include "src/util/env.h"

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
                     const at::Tensor& bias, const at::Tensor& branch_bias) {
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
  if (branch_bias.defined() &&
      (branch_bias.dim() != 1 || branch_bias.size(0) != c || branch_bias.scalar_type() != weight.scalar_type())) {
    throw UsageError(what + "branch_bias must be [C] with C = " + std::to_string(c) + " in weight's dtype");
  }
}

// The type the reference computes the LayerNorm in: the wider of the inputs' and the parameters' (ATen's CUDA
// LayerNorm wants one type; with fp32 parameters this is what the kernel does too).
at::ScalarType compute_type(const at::Tensor& h, const at::Tensor& weight) {
  return at::promote_types(h.scalar_type(), weight.scalar_type());
}

// fp32 for 16-bit and fp32 values, fp64 for fp64: where the branch bias is added and its gradient summed.
at::ScalarType accumulate_type(at::ScalarType t) { return at::promote_types(t, at::kFloat); }

// The branch's values as a biased GEMM would have stored them: the sum in fp32, rounded once to the branch's
// dtype (whatever the bias's dtype).
at::Tensor add_branch_bias(const at::Tensor& branch, const at::Tensor& branch_bias) {
  const auto acc = accumulate_type(at::promote_types(branch.scalar_type(), branch_bias.scalar_type()));
  return (branch.to(acc) + branch_bias.to(acc)).to(branch.scalar_type());
}

// Σ over all rows of d(branch) as returned (already rounded to the inputs' dtype), in fp32, rounded once.
at::Tensor branch_bias_grad(const at::Tensor& dh, at::ScalarType dtype) {
  return dh.to(accumulate_type(dh.scalar_type())).reshape({-1, dh.size(-1)}).sum(0).to(dtype);
}

struct Forward {
  at::Tensor h, y, mean, rstd;
};

Forward reference_forward(const at::Tensor& residual, const at::Tensor& branch, const at::Tensor& branch_bias,
                          const at::Tensor& weight, const at::Tensor& bias, double eps) {
  at::Tensor h = residual + (branch_bias.defined() ? add_branch_bias(branch, branch_bias) : branch);
  const auto ct = compute_type(h, weight);
  auto [y, mean, rstd] = at::native_layer_norm(h.to(ct), {h.size(-1)}, weight, bias, eps);
  return {h, y.to(h.scalar_type()), mean, rstd};
}

struct Backward {
  at::Tensor dh, dweight, dbias, dbranch_bias;  // dbranch_bias undefined without a branch bias
};

// d(h) = dh_out + LayerNorm's input gradient, d(weight), d(bias) and, when `branch_bias`, its gradient Σ d(h);
// dh_out may be undefined.
Backward reference_backward(const at::Tensor& dy, const at::Tensor& h, const at::Tensor& mean,
                            const at::Tensor& rstd, const at::Tensor& weight, const at::Tensor& bias,
                            const at::Tensor& dh_out, bool branch_bias) {
  const auto ct = compute_type(h, weight);
  auto [dx, dweight, dbias] = at::native_layer_norm_backward(dy.to(ct), h.to(ct), {h.size(-1)}, mean, rstd, weight,
                                                             bias, {true, true, true});
  if (dh_out.defined()) dx = dx + dh_out.to(ct);  // summed before the one rounding, as the kernel does
  at::Tensor dh = dx.to(h.scalar_type());
  return {dh, dweight, dbias, branch_bias ? branch_bias_grad(dh, weight.scalar_type()) : at::Tensor()};
}

#ifdef DS_WITH_CUDA_OPS
Forward fused_forward(const at::Tensor& residual, const at::Tensor& branch, const at::Tensor& branch_bias,
                      const at::Tensor& weight, const at::Tensor& bias, double eps) {
  const c10::cuda::CUDAGuard guard(residual.device());
  const auto r = residual.contiguous(), b = branch.contiguous(), w = weight.contiguous(), bb = bias.contiguous();
  const auto rb = branch_bias.defined() ? branch_bias.contiguous() : at::Tensor();
  const std::int64_t columns = r.size(-1), rows = r.numel() / columns;
  Forward out{at::empty(r.sizes(), r.options()), at::empty(r.sizes(), r.options()),
              at::empty({rows}, r.options().dtype(at::kFloat)), at::empty({rows}, r.options().dtype(at::kFloat))};
  detail::check_launch(
      detail::launch_add_layer_norm_forward(
          detail::element_type(r.scalar_type()), detail::element_type(w.scalar_type()), r.data_ptr(), b.data_ptr(),
          rb.defined() ? rb.data_ptr() : nullptr, w.data_ptr(), bb.data_ptr(), out.h.data_ptr(), out.y.data_ptr(),
          out.mean.data_ptr<float>(), out.rstd.data_ptr<float>(), rows, columns, static_cast<float>(eps),
          c10::cuda::getCurrentCUDAStream().stream()),
      "add_layer_norm");
  return out;
}

Backward fused_backward(const at::Tensor& dy, const at::Tensor& h, const at::Tensor& mean, const at::Tensor& rstd,
                        const at::Tensor& weight, const at::Tensor& dh_out, bool branch_bias) {
  const c10::cuda::CUDAGuard guard(h.device());
  // Gradients arrive in the outputs' dtype (autograd casts them), but not necessarily contiguous.
  const auto d = dy.contiguous(), w = weight.contiguous();
  const auto other = dh_out.defined() ? dh_out.contiguous() : at::Tensor();
  const std::int64_t columns = h.size(-1), rows = h.numel() / columns;
  Backward out{at::empty(h.sizes(), h.options()), at::empty({columns}, w.options()), at::empty({columns}, w.options()),
               branch_bias ? at::empty({columns}, w.options()) : at::Tensor()};
  const std::int64_t parts = detail::add_layer_norm_backward_parts(rows, columns);
  // Freed in stream order.
  at::Tensor workspace = at::empty({branch_bias ? 3 : 2, parts, columns}, h.options().dtype(at::kFloat));
  detail::check_launch(
      detail::launch_add_layer_norm_backward(
          detail::element_type(h.scalar_type()), detail::element_type(w.scalar_type()), d.data_ptr(), h.data_ptr(),
          mean.data_ptr<float>(), rstd.data_ptr<float>(), w.data_ptr(), other.defined() ? other.data_ptr() : nullptr,
          out.dh.data_ptr(), out.dweight.data_ptr(), out.dbias.data_ptr(),
          branch_bias ? out.dbranch_bias.data_ptr() : nullptr, workspace.data_ptr<float>(), parts, rows, columns,
          c10::cuda::getCurrentCUDAStream().stream()),
      "add_layer_norm");
  return out;
}
#endif

// One autograd node for both paths: forward saves h (an output, so it costs no memory of its own), the fp32
// per-row mean and rstd, and the parameters; backward receives h's gradient from its other uses with y's.
class AddLayerNorm : public torch::autograd::Function<AddLayerNorm> {
 public:
  // branch_bias is optional rather than an undefined tensor: autograd's Function takes no undefined inputs.
  static variable_list forward(AutogradContext* ctx, const at::Tensor& residual, const at::Tensor& branch,
                               const at::Tensor& weight, const at::Tensor& bias,
                               const std::optional<at::Tensor>& maybe_branch_bias, double eps, bool fused) {
    const at::Tensor branch_bias = maybe_branch_bias.value_or(at::Tensor());
#ifdef DS_WITH_CUDA_OPS
    Forward f = fused ? fused_forward(residual, branch, branch_bias, weight, bias, eps)
                      : reference_forward(residual, branch, branch_bias, weight, bias, eps);
#else
    (void)fused;
    Forward f = reference_forward(residual, branch, branch_bias, weight, bias, eps);
#endif
    // An h with no other use gets no gradient: keep it undefined rather than a tensor of zeros to read.
    ctx->set_materialize_grads(false);
    ctx->save_for_backward({f.h, f.mean, f.rstd, weight, bias});
    ctx->saved_data["fused"] = fused;
    ctx->saved_data["branch_bias"] = branch_bias.defined();  // its gradient needs only its dtype, weight's
    return {f.h, f.y};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& h = saved[0];
    const at::Tensor& dh_out = grad_outputs[0];
    const at::Tensor& dy = grad_outputs[1];
    const bool branch_bias = ctx->saved_data["branch_bias"].toBool();
    Backward g;
    if (!dy.defined()) {
      // y unused: h's own gradient passes through, the LayerNorm's parameters get none.
      g.dh = dh_out;
      if (branch_bias && dh_out.defined()) g.dbranch_bias = branch_bias_grad(dh_out, saved[3].scalar_type());
    } else {
#ifdef DS_WITH_CUDA_OPS
      g = ctx->saved_data["fused"].toBool()
              ? fused_backward(dy, h, saved[1], saved[2], saved[3], dh_out, branch_bias)
              : reference_backward(dy, h, saved[1], saved[2], saved[3], saved[4], dh_out, branch_bias);
#else
      g = reference_backward(dy, h, saved[1], saved[2], saved[3], saved[4], dh_out, branch_bias);
#endif
    }
    // residual and branch enter only through their sum: one tensor serves both (autograd's own add does this).
    return {g.dh, g.dh, g.dweight, g.dbias, g.dbranch_bias, at::Tensor(), at::Tensor()};
  }
};

std::pair<at::Tensor, at::Tensor> apply(const at::Tensor& residual, const at::Tensor& branch,
                                        const at::Tensor& weight, const at::Tensor& bias, double eps,
                                        const at::Tensor& branch_bias, bool fused) {
  check_arguments(residual, branch, weight, bias, branch_bias);
  auto out = AddLayerNorm::apply(residual, branch, weight, bias,
                                 branch_bias.defined() ? std::optional<at::Tensor>(branch_bias) : std::nullopt, eps,
                                 fused);
  return {out[0], out[1]};
}

}  // namespace

bool add_layer_norm_reference_forced() {
  return util::env_is("DS_REFERENCE_ADD_LAYER_NORM");
}

bool add_layer_norm_is_fused(const at::Tensor& residual, const at::Tensor& branch, const at::Tensor& weight,
                             const at::Tensor& bias, const at::Tensor& branch_bias) {
#ifdef DS_WITH_CUDA_OPS
  if (add_layer_norm_reference_forced() || !residual.defined() || !branch.defined() || !weight.defined() ||
      !bias.defined() || !residual.is_cuda() || residual.dim() < 1) {
    return false;
  }
  const auto t = residual.scalar_type(), p = weight.scalar_type();
  const auto device = residual.device();
  const std::int64_t c = residual.size(-1);
  if (branch_bias.defined() && (branch_bias.scalar_type() != p || branch_bias.device() != device ||
                                branch_bias.dim() != 1 || branch_bias.size(0) != c)) {
    return false;
  }
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
  (void)branch_bias;
  return false;
#endif
}

std::pair<at::Tensor, at::Tensor> add_layer_norm(const at::Tensor& residual, const at::Tensor& branch,
                                                 const at::Tensor& weight, const at::Tensor& bias, double eps,
                                                 const at::Tensor& branch_bias) {
  return apply(residual, branch, weight, bias, eps, branch_bias,
               add_layer_norm_is_fused(residual, branch, weight, bias, branch_bias));
}

std::pair<at::Tensor, at::Tensor> add_layer_norm_reference(const at::Tensor& residual, const at::Tensor& branch,
                                                           const at::Tensor& weight, const at::Tensor& bias,
                                                           double eps, const at::Tensor& branch_bias) {
  return apply(residual, branch, weight, bias, eps, branch_bias, false);
}

}  // namespace deepspeed::ops
