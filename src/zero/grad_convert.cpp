#include "src/zero/grad_convert.h"

#include <string>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "deepspeed/util/error.h"

#ifdef DS_WITH_CUDA_CONVERT
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "src/zero/grad_convert_kernel.h"
#endif

namespace deepspeed::zero {

void hand_over_gradient(at::Tensor dst, const at::Tensor& src, bool accumulate) {
  at::NoGradGuard no_grad;
#ifdef DS_WITH_CUDA_CONVERT
  const bool sixteen = src.scalar_type() == at::kBFloat16 || src.scalar_type() == at::kHalf;
  if (sixteen && dst.scalar_type() == at::kFloat && src.is_cuda() && dst.device() == src.device() &&
      src.is_contiguous() && dst.is_contiguous() && src.numel() == dst.numel()) {
    const c10::cuda::CUDAGuard guard(src.device());
    const auto type = src.scalar_type() == at::kBFloat16 ? detail::SixteenBit::kBFloat16 : detail::SixteenBit::kFloat16;
    const cudaError_t err = detail::launch_into_fp32(type, src.data_ptr(), dst.data_ptr<float>(), src.numel(),
                                                     accumulate, c10::cuda::getCurrentCUDAStream().stream());
    if (err != cudaSuccess) throw JobError(std::string("gradient hand-over launch failed: ") + cudaGetErrorString(err));
    return;
  }
#endif
  if (accumulate) dst.add_(src);
  else dst.copy_(src);
}

}  // namespace deepspeed::zero
