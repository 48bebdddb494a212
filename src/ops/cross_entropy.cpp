#include "deepspeed/ops/cross_entropy.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "deepspeed/util/error.h"
#include "src/util/env.h"

#ifdef DS_WITH_CUDA_OPS
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "src/ops/cross_entropy_kernel.h"
#include "src/ops/launch_support.h"
#endif

namespace deepspeed::ops {
namespace {

#ifdef DS_WITH_CUDA_OPS
using detail::element_type;

// The gradient for an incoming gradient of 1 is produced with the loss (the kernel has the row's log-sum-exp in
// hand then) and kept in the autograd context; backward finishes it on the device without a host sync (see
// launch_cross_entropy_backward), so a scaled loss costs one more pass and a plain one none.
class FusedCrossEntropy : public torch::autograd::Function<FusedCrossEntropy> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& logits, const at::Tensor& targets) {
    const c10::cuda::CUDAGuard guard(logits.device());
    const std::int64_t rows = logits.size(0), vocab = logits.size(1);
    const auto t = targets.to(at::kLong).contiguous();
    at::Tensor loss_rows = at::empty({rows}, logits.options().dtype(at::kFloat));
    at::Tensor lse_rows = at::empty({rows}, logits.options().dtype(at::kFloat));
    at::Tensor grad = at::empty_like(logits);
    const float scale = rows > 0 ? 1.0f / static_cast<float>(rows) : 0.0f;
    detail::check_launch(detail::launch_cross_entropy_forward(element_type(logits.scalar_type()), logits.data_ptr(),
                                                              t.data_ptr<std::int64_t>(), loss_rows.data_ptr<float>(),
                                                              lse_rows.data_ptr<float>(), grad.data_ptr(), rows, vocab,
                                                              scale, c10::cuda::getCurrentCUDAStream().stream()),
                         "cross-entropy");
    ctx->save_for_backward({logits});  // read only when the incoming gradient is not 1; version-checked
    ctx->saved_data["targets"] = t;
    ctx->saved_data["lse"] = lse_rows;
    ctx->saved_data["grad"] = grad;
    ctx->saved_data["scale"] = static_cast<double>(scale);
    return loss_rows.mean();
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    auto& slot = ctx->saved_data["grad"];
    if (!slot.isTensor()) {
      throw UsageError("deepspeed::ops::cross_entropy: the fused loss can be differentiated once (retain_graph is not "
                       "supported); set DS_REFERENCE_CROSS_ENTROPY=1 for the reference");
    }
    at::Tensor grad = slot.toTensor();
    slot = c10::IValue();  // freed when autograd drops the returned gradient
    const at::Tensor logits = ctx->get_saved_variables()[0];
    const at::Tensor targets = ctx->saved_data["targets"].toTensor();
    const at::Tensor lse = ctx->saved_data["lse"].toTensor();
    const auto scale = static_cast<float>(ctx->saved_data["scale"].toDouble());
    ctx->saved_data.clear();
    const c10::cuda::CUDAGuard guard(grad.device());
    const at::Tensor factor = grad_outputs[0].defined()
                                  ? grad_outputs[0].to(grad.device(), at::kFloat).contiguous()
                                  : at::zeros({}, grad.options().dtype(at::kFloat));
    detail::check_launch(detail::launch_cross_entropy_backward(
                             element_type(grad.scalar_type()), logits.data_ptr(), targets.data_ptr<std::int64_t>(),
                             lse.data_ptr<float>(), grad.data_ptr(), grad.size(0), grad.size(1), scale,
                             factor.data_ptr<float>(), c10::cuda::getCurrentCUDAStream().stream()),
                         "cross-entropy");
    return {grad, at::Tensor()};
  }
};
#endif

}  // namespace

bool cross_entropy_reference_forced() {
  return util::env_is("DS_REFERENCE_CROSS_ENTROPY");
}

at::Tensor cross_entropy_reference(const at::Tensor& logits, const at::Tensor& targets) {
  return at::cross_entropy_loss(logits.to(at::kFloat), targets);
}

bool cross_entropy_is_fused(const at::Tensor& logits, const at::Tensor& targets) {
#ifdef DS_WITH_CUDA_OPS
  const auto t = logits.scalar_type();
  return !cross_entropy_reference_forced() && logits.is_cuda() && logits.dim() == 2 && logits.is_contiguous() &&
         (t == at::kBFloat16 || t == at::kHalf || t == at::kFloat) && targets.dim() == 1 &&
         targets.size(0) == logits.size(0) && targets.device() == logits.device() && !at::isFloatingType(targets.scalar_type());
#else
  (void)logits;
  (void)targets;
  return false;
#endif
}

bool cross_entropy_is_staged(const at::Tensor& logits, const at::Tensor& targets) {
#ifdef DS_WITH_CUDA_OPS
  if (!cross_entropy_is_fused(logits, targets)) return false;
  const c10::cuda::CUDAGuard guard(logits.device());
  return detail::cross_entropy_forward_is_staged(element_type(logits.scalar_type()), logits.data_ptr(), logits.size(1));
#else
  (void)logits;
  (void)targets;
  return false;
#endif
}

at::Tensor cross_entropy(const at::Tensor& logits, const at::Tensor& targets) {
#ifdef DS_WITH_CUDA_OPS
  // The kernel always writes the gradient; without autograd (evaluation) that would be wasted work and memory.
  if (cross_entropy_is_fused(logits, targets) && at::GradMode::is_enabled() && logits.requires_grad()) {
    return FusedCrossEntropy::apply(logits, targets);
  }
#endif
  return cross_entropy_reference(logits, targets);
}

}  // namespace deepspeed::ops
