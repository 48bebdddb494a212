#pragma once
// Internal, for every deepspeed.cpp CUDA kernel: the 16-bit storage types to fp32 and back (round to nearest
// even), so a kernel computes in fp32 and rounds once. Host and device: the CPU tests of the kernels' arithmetic
// (tests/unit/kernel_math_test.cpp) round through the same functions the kernels do.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace deepspeed::cuda {

template <typename T> __host__ __device__ __forceinline__ float to_float(T x);
template <> __host__ __device__ __forceinline__ float to_float(float x) { return x; }
template <> __host__ __device__ __forceinline__ float to_float(__half x) { return __half2float(x); }
template <> __host__ __device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T> __host__ __device__ __forceinline__ T from_float(float x);
template <> __host__ __device__ __forceinline__ float from_float(float x) { return x; }
template <> __host__ __device__ __forceinline__ __half from_float(float x) { return __float2half_rn(x); }
template <> __host__ __device__ __forceinline__ __nv_bfloat16 from_float(float x) { return __float2bfloat16_rn(x); }

/// x rounded to T's precision, as a float: what storing x in a T and reading it back gives.
template <typename T> __host__ __device__ __forceinline__ float round_to(float x) {
  return to_float(from_float<T>(x));
}

}  // namespace deepspeed::cuda
