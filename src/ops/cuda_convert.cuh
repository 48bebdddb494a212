#pragma once
// Internal, for the ops/ kernels: the 16-bit storage types to fp32 and back (round to nearest even), so every
// kernel accumulates in fp32 and rounds once; packed loads and stores; the (input, parameter) type dispatch.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <initializer_list>

#include "src/ops/element_type.h"

namespace deepspeed::ops::detail {

template <typename T> __device__ __forceinline__ float to_float(T x);
template <> __device__ __forceinline__ float to_float(float x) { return x; }
template <> __device__ __forceinline__ float to_float(__half x) { return __half2float(x); }
template <> __device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T> __device__ __forceinline__ T from_float(float x);
template <> __device__ __forceinline__ float from_float(float x) { return x; }
template <> __device__ __forceinline__ __half from_float(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_float(float x) { return __float2bfloat16_rn(x); }

/// x rounded to T's precision, as a float: what storing x in a T and reading it back gives.
template <typename T> __device__ __forceinline__ float round_to(float x) { return to_float(from_float<T>(x)); }

// N consecutive values at p, as floats: 16-byte loads when N values span whole 16-byte words (the launcher
// checked alignment), element loads otherwise.
template <typename U, int N>
__device__ __forceinline__ void load(const U* __restrict__ p, float (&out)[N]) {
  if constexpr (N * sizeof(U) >= 16) {
    static_assert(N * sizeof(U) % 16 == 0);
    constexpr int kPer = 16 / sizeof(U);
#pragma unroll
    for (int c = 0; c < N / kPer; ++c) {
      const uint4 raw = reinterpret_cast<const uint4*>(p)[c];
      U values[kPer];
      memcpy(values, &raw, sizeof raw);
#pragma unroll
      for (int j = 0; j < kPer; ++j) out[c * kPer + j] = to_float(values[j]);
    }
  } else {
#pragma unroll
    for (int k = 0; k < N; ++k) out[k] = to_float(p[k]);
  }
}

template <typename U, int N>
__device__ __forceinline__ void store(U* __restrict__ p, const float (&in)[N]) {
  if constexpr (N * sizeof(U) >= 16) {
    static_assert(N * sizeof(U) % 16 == 0);
    constexpr int kPer = 16 / sizeof(U);
#pragma unroll
    for (int c = 0; c < N / kPer; ++c) {
      U values[kPer];
#pragma unroll
      for (int j = 0; j < kPer; ++j) values[j] = from_float<U>(in[c * kPer + j]);
      uint4 raw;
      memcpy(&raw, values, sizeof raw);
      reinterpret_cast<uint4*>(p)[c] = raw;
    }
  } else {
#pragma unroll
    for (int k = 0; k < N; ++k) p[k] = from_float<U>(in[k]);
  }
}

/// True when every non-null pointer is 16-byte aligned (the packed loads' requirement).
inline bool aligned(std::initializer_list<const void*> pointers) {
  return std::all_of(pointers.begin(), pointers.end(),
                     [](const void* p) { return p == nullptr || reinterpret_cast<std::uintptr_t>(p) % 16 == 0; });
}

// The (input, parameter) type pairs: parameters in the inputs' type or in fp32.
template <template <typename, typename> class Launch, typename... Args>
cudaError_t dispatch(ElementType type, ElementType param_type, Args... args) {
  const bool fp32_params = param_type == ElementType::kFloat32;
  switch (type) {
    case ElementType::kFloat32:
      return fp32_params ? Launch<float, float>::run(args...) : cudaErrorInvalidValue;
    case ElementType::kFloat16:
      if (fp32_params) return Launch<__half, float>::run(args...);
      return param_type == type ? Launch<__half, __half>::run(args...) : cudaErrorInvalidValue;
    case ElementType::kBFloat16:
      if (fp32_params) return Launch<__nv_bfloat16, float>::run(args...);
      return param_type == type ? Launch<__nv_bfloat16, __nv_bfloat16>::run(args...) : cudaErrorInvalidValue;
  }
  return cudaErrorInvalidValue;
}

}  // namespace deepspeed::ops::detail
