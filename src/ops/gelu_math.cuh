#pragma once
// Internal, for the bias + GELU kernels (bias_gelu_kernel.cu) and the CPU tests of their arithmetic
// (tests/unit/kernel_math_test.cpp): GELU's tanh approximation and its derivative, in ATen's form (tanhf) and in
// the σ form the 16-bit kernels take. Host and device, so the formulas the kernels run are the ones tested here.
#include <cuda_runtime_api.h>

#include <cmath>

#include "src/ops/fast_math.cuh"

namespace deepspeed::ops::detail {

inline constexpr float kSqrt2OverPi = 0.7978845608028654f;
inline constexpr float kCubic = 0.044715f;

// The cube is formed first and the terms grouped as in the formula, as ATen's gelu(approximate="tanh") does, so
// the two paths differ by tanhf's rounding at most. fp32 inputs take this form (bit for bit ATen's), and 16-bit
// ones with DS_BIAS_GELU_TANHF=1.
__host__ __device__ __forceinline__ float gelu_tanh(float h) {
  const float cube = h * h * h;
  return 0.5f * h * (1.0f + tanhf(kSqrt2OverPi * (h + kCubic * cube)));
}

// d/dh of gelu_tanh: ½(1 + t) + ½h(1 − t²)·√(2/π)(1 + 3·0.044715·h²),
// with t = tanh(√(2/π)(h + 0.044715·h³)).
__host__ __device__ __forceinline__ float gelu_tanh_grad(float h) {
  const float square = h * h;
  const float t = tanhf(kSqrt2OverPi * (h + kCubic * (square * h)));
  const float outer = 0.5f * (1.0f + t);
  const float inner = 0.5f * h * (1.0f - t * t) * (kSqrt2OverPi * (1.0f + 3.0f * kCubic * square));
  return outer + inner;
}

// The same function for 16-bit inputs, written as ½(1 + tanh u) = σ(2u) = 1/(1 + e^(−2u)): one exp2 and one
// reciprocal of the special-function unit and a handful of multiply-adds, where tanhf's range handling made
// ~34 instructions an element and the kernels instruction-bound on an H200 (GPT-2 1.5B: the forward ran at
// 2.8 TB/s, 3.6 ms a step for ~2.4 ms of bytes). Against tanhf's form the fp32 value differs by a few units of
// fp32 (bench/gelu_forms.py and kernel_math_test check every 16-bit h against the float64 value), so the
// rounded 16-bit result is the same or the adjacent one; e^(−2u) overflowing to ∞ gives σ = 0, as it should.
__host__ __device__ __forceinline__ float sigmoid_of_2u(float h, float square) {
  constexpr float kMinusTwoLog2e = -2.0f * kLog2e;
  const float u = h * (kSqrt2OverPi + (kSqrt2OverPi * kCubic) * square);
  // Flushed to zero, a subnormal e^(−2u) added to 1 changes nothing.
  return fast_reciprocal(1.0f + fast_exp2(kMinusTwoLog2e * u));
}

__host__ __device__ __forceinline__ float gelu_sigmoid(float h) { return h * sigmoid_of_2u(h, h * h); }

// d/dh h·σ(2u) = σ + h·σ(1 − σ)·2u' = σ·(1 + (1 − σ)·h·(2√(2/π) + 6·0.044715·√(2/π)·h²)).
// h is bounded to ±20 in the slope and in h²: from |h| = 20 on σ is exactly 0 or 1 in fp32 either way, so the
// (1 − σ)·slope term must be 0, but with h itself the slope overflows to ±∞ for |h| > 1.2e13 (bf16 holds such
// values) and 0·∞ made a NaN where the derivative is 1 or 0. NaN h still gives NaN (through σ); h = ±∞ gives
// the limits 1 and 0, where ATen's form gives NaN (kernel_math_test: SigmaFormIsFiniteWhereFp32Overflows).
__host__ __device__ __forceinline__ float gelu_sigmoid_grad(float h) {
  const float bounded = std::fmin(std::fmax(h, -20.0f), 20.0f);
  const float square = bounded * bounded;
  const float s = sigmoid_of_2u(h, square);
  const float slope = bounded * (2.0f * kSqrt2OverPi + (6.0f * kSqrt2OverPi * kCubic) * square);
  return s * (1.0f + (1.0f - s) * slope);
}

// kFast: the σ form (16-bit inputs, the default); otherwise tanhf's.
template <bool kFast>
__host__ __device__ __forceinline__ float gelu(float h) {
  if constexpr (kFast) return gelu_sigmoid(h);
  else return gelu_tanh(h);
}

template <bool kFast>
__host__ __device__ __forceinline__ float gelu_grad(float h) {
  if constexpr (kFast) return gelu_sigmoid_grad(h);
  else return gelu_tanh_grad(h);
}

}  // namespace deepspeed::ops::detail
