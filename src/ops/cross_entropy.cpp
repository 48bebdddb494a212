#include "deepspeed/ops/cross_entropy.h"

#include <cstdlib>
#include <string>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "deepspeed/util/error.h"

#ifdef DS_WITH_CUDA_OPS
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "src/ops/cross_entropy_kernel.h"
#endif

namespace deepspeed::ops {
namespace {

#ifdef DS_WITH_CUDA_OPS
detail::LogitType logit_type(at::ScalarType t) {
  switch (t) {
    case at::kBFloat16: return detail::LogitType::kBFloat16;
    case at::kHalf: return detail::LogitType::kFloat16;
    default: return detail::LogitType::kFloat32;
  }
}

// The gradient is produced with the loss (the kernel has the row's log-sum-exp in hand then) and kept in the
// autograd context until backward scales it by the incoming gradient.
class FusedCrossEntropy : public torch::autograd::Function<FusedCrossEntropy> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& logits, const at::Tensor& targets) {
    const c10::cuda::CUDAGuard guard(logits.device());
    const std::int64_t rows = logits.size(0), vocab = logits.size(1);
    const auto t = targets.to(at::kLong).contiguous();
    at::Tensor loss_rows = at::empty({rows}, logits.options().dtype(at::kFloat));
    at::Tensor grad = at::empty_like(logits);
    const float scale = rows > 0 ? 1.0f / static_cast<float>(rows) : 0.0f;
    const auto err = detail::launch_cross_entropy_forward(logit_type(logits.scalar_type()), logits.data_ptr(),
                                                          t.data_ptr<std::int64_t>(), loss_rows.data_ptr<float>(),
                                                          grad.data_ptr(), rows, vocab, scale,
                                                          c10::cuda::getCurrentCUDAStream().stream());
    if (err != cudaSuccess) throw JobError(std::string("fused cross-entropy launch failed: ") + cudaGetErrorString(err));
    ctx->saved_data["grad"] = grad;
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
    grad.mul_(grad_outputs[0]);
    return {grad, at::Tensor()};
  }
};
#endif

}  // namespace

bool cross_entropy_reference_forced() {
  const char* v = std::getenv("DS_REFERENCE_CROSS_ENTROPY");
  return v != nullptr && std::string(v) == "1";
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
