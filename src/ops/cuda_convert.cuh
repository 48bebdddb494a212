#pragma once
// Internal, for the ops/ kernels: the 16-bit conversions (src/util/cuda_values.cuh), the one-wave grid
// (src/util/cuda_grid.cuh) and the special-function unit's exp2 (fast_math.cuh); packed loads and stores,
// converted or raw; the (input, parameter) type dispatch.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <initializer_list>

#include "src/ops/element_type.h"
#include "src/ops/fast_math.cuh"
#include "src/util/cuda_grid.cuh"
#include "src/util/cuda_values.cuh"

namespace deepspeed::ops::detail {

using ::deepspeed::cuda::device_sms;
using ::deepspeed::cuda::from_float;
using ::deepspeed::cuda::resident_blocks_of;
using ::deepspeed::cuda::round_to;
using ::deepspeed::cuda::to_float;

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

// kPack values of T as loaded (16 bytes when the pack spans them), converted to float only where used (the
// LayerNorm backward keeps the next row's raw values in flight while it reduces the current one).
template <typename T, int kPack>
struct alignas(kPack * sizeof(T) >= 16 ? 16 : alignof(T)) Raw {
  T v[kPack];
};

template <typename T, int kPack>
__device__ __forceinline__ void load_raw(const T* __restrict__ p, Raw<T, kPack>& r) {
  if constexpr (kPack * sizeof(T) == 16) {
    *reinterpret_cast<uint4*>(r.v) = *reinterpret_cast<const uint4*>(p);
  } else {
#pragma unroll
    for (int k = 0; k < kPack; ++k) r.v[k] = p[k];
  }
}

template <typename T, int kPack>
__device__ __forceinline__ void store_raw(T* __restrict__ p, const Raw<T, kPack>& r) {
  if constexpr (kPack * sizeof(T) == 16) {
    *reinterpret_cast<uint4*>(p) = *reinterpret_cast<const uint4*>(r.v);
  } else {
#pragma unroll
    for (int k = 0; k < kPack; ++k) p[k] = r.v[k];
  }
}

/// True when every non-null pointer is 16-byte aligned (the packed loads' requirement).
inline bool aligned(std::initializer_list<const void*> pointers) {
  return std::all_of(pointers.begin(), pointers.end(),
                     [](const void* p) { return p == nullptr || reinterpret_cast<std::uintptr_t>(p) % 16 == 0; });
}

/// A type carried as a value, so one generic lambda can be instantiated per type pair.
template <typename T>
struct TypeTag {
  using type = T;
};

/// Calls fn(TypeTag<T>{}, TypeTag<P>{}) for the (input, parameter) type pair named: parameters in the inputs'
/// type or in fp32; any other pair is cudaErrorInvalidValue.
template <typename Fn>
cudaError_t dispatch(ElementType type, ElementType param_type, Fn&& fn) {
  const bool fp32_params = param_type == ElementType::kFloat32;
  switch (type) {
    case ElementType::kFloat32:
      return fp32_params ? fn(TypeTag<float>{}, TypeTag<float>{}) : cudaErrorInvalidValue;
    case ElementType::kFloat16:
      if (fp32_params) return fn(TypeTag<__half>{}, TypeTag<float>{});
      return param_type == type ? fn(TypeTag<__half>{}, TypeTag<__half>{}) : cudaErrorInvalidValue;
    case ElementType::kBFloat16:
      if (fp32_params) return fn(TypeTag<__nv_bfloat16>{}, TypeTag<float>{});
      return param_type == type ? fn(TypeTag<__nv_bfloat16>{}, TypeTag<__nv_bfloat16>{}) : cudaErrorInvalidValue;
  }
  return cudaErrorInvalidValue;
}

}  // namespace deepspeed::ops::detail
