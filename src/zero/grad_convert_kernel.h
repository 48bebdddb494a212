#pragma once
// Torch-free launcher of the gradient hand-over into an fp32 accumulation buffer (grad_convert_kernel.cu).
#include <cstdint>

#include <cuda_runtime_api.h>

namespace deepspeed::zero::detail {

enum class SixteenBit { kFloat16, kBFloat16 };

/// dst[i] = float(src[i]) (accumulate: dst[i] += float(src[i])) for n elements, asynchronously on `stream`.
/// 16-byte accesses when both pointers are 16-byte aligned, element by element otherwise. Returns the launch
/// error.
cudaError_t launch_into_fp32(SixteenBit type, const void* src, float* dst, std::int64_t n, bool accumulate,
                             cudaStream_t stream);

}  // namespace deepspeed::zero::detail
