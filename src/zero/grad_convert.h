#pragma once
// Internal to ds_zero: a parameter's gradient handed into its slot of an accumulation buffer.
#include <ATen/core/Tensor.h>

namespace deepspeed::zero {

/// dst = src (accumulate: dst += src), converting to dst's dtype. A 16-bit CUDA gradient into a contiguous fp32
/// slot takes grad_convert_kernel.cu (vectorised, exact); anything else LibTorch's copy_/add_, which give the
/// same values. On the current stream; no gradient tracking.
void hand_over_gradient(at::Tensor dst, const at::Tensor& src, bool accumulate);

}  // namespace deepspeed::zero
