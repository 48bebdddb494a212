#pragma once
// Internal, for the ops/ kernels and the CPU tests of their arithmetic: the special-function unit's exp2 and
// reciprocal, with host stand-ins so the same formulas run on a CPU (tests/unit/kernel_math_test.cpp).
#include <cuda_runtime_api.h>

#include <cmath>

namespace deepspeed::ops::detail {

inline constexpr float kLog2e = 1.4426950408889634f;

/// 2^x from the special-function unit (ex2.approx.ftz: about two fp32 units of relative error, subnormal results
/// flushed to zero, 2^−∞ = 0, NaN stays NaN): one instruction, where exp2f and expf take 3 to 10 with their range
/// handling, which made the elementwise kernels that call one per value instruction-bound. On the host: the C
/// library's exp2 (within an fp32 unit) with the same flush, so a CPU test checks a formula's algebra and its
/// special values, not the unit's last two bits (the GPU tests hold those to their bounds).
__host__ __device__ __forceinline__ float fast_exp2(float x) {
#ifdef __CUDA_ARCH__
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
#else
  const float y = std::exp2(x);
  return std::fpclassify(y) == FP_SUBNORMAL ? 0.0f : y;
#endif
}

/// 1/d from the special-function unit (__fdividef: about two units; 0 for |d| > 2¹²⁶, including ∞). On the host:
/// the quotient, with the same zero above 2¹²⁶.
__host__ __device__ __forceinline__ float fast_reciprocal(float d) {
#ifdef __CUDA_ARCH__
  return __fdividef(1.0f, d);
#else
  return std::fabs(d) > 0x1p126f ? 0.0f : 1.0f / d;
#endif
}

}  // namespace deepspeed::ops::detail
