#pragma once
// Internal, for the fused cross-entropy kernels (cross_entropy_kernel.cu) and the CPU tests of their arithmetic
// (tests/unit/kernel_math_test.cpp): a row's running maximum and sum of e^(x − max), per value, per 16-byte pack,
// and two threads' states combined. Host and device, so the rules for −∞, +∞ and NaN that the kernels follow are
// the ones tested on every machine.
#include <cuda_runtime_api.h>

#include <cmath>

#include "src/ops/fast_math.cuh"

namespace deepspeed::ops::detail {

// Running maximum and sum of exp(x - max); an empty state has max = -inf and sum = 0.
struct MaxSum {
  float max;
  float sum;
};

// An empty side (max −∞) drops out, unless its sum is NaN: a thread that saw only −∞ and NaN values must still
// make the row's loss NaN (NaN · 0 below keeps it).
__host__ __device__ __forceinline__ MaxSum combine(MaxSum a, MaxSum b) {
  if (a.max == -INFINITY && !std::isnan(a.sum)) return b;
  if (b.max == -INFINITY && !std::isnan(b.sum)) return a;
  const float m = std::fmax(a.max, b.max);
  return {m, a.sum * std::exp(a.max - m) + b.sum * std::exp(b.max - m)};
}

__host__ __device__ __forceinline__ void accumulate(MaxSum& state, float x) {
  if (x == -INFINITY) return;  // exp(-inf) = 0; skipping keeps -inf - -inf out of the arithmetic
  if (x > state.max) {
    // A +∞ logit makes the sum NaN, as ATen's e^(x − max) has e^(∞ − ∞) in it; carried as 1 here, the row's lse
    // was ∞ and its loss ∞ or NaN depending on which thread held the ∞ (kernel_math_test).
    state.sum = x == INFINITY ? NAN : state.sum * std::exp(state.max - x) + 1.0f;
    state.max = x;
  } else {
    state.sum += std::exp(x - state.max);  // NaN x lands here and makes the sum NaN, as it should
  }
}

// A 16-byte pack's values added to the running state: the pack's maximum first (one rescale of the sum, not one
// per new maximum), then e^(v − max) as 2^((v − max)·log2 e) from the special-function unit. The per-value
// `accumulate`, with expf's range handling and a branch per value, made the forward instruction-bound: ~34
// instructions a logit against ~8 here (GPT-2 124M: 1.6 G logits a step). A pack whose maximum is not finite
// (an +∞ logit, or only −∞ and NaN) goes through `accumulate`, whose rules for those stay exact; a NaN beside
// finite values makes the sum NaN through its own term. e^(v − max) is off by a few fp32 units, the loss by
// about 1e-7 relative.
template <int N>
__host__ __device__ __forceinline__ void accumulate_pack(MaxSum& state, const float (&v)[N]) {
  float m = v[0];
#pragma unroll
  for (int k = 1; k < N; ++k) m = std::fmax(m, v[k]);
  if (!std::isfinite(m)) {
#pragma unroll
    for (int k = 0; k < N; ++k) accumulate(state, v[k]);
    return;
  }
  if (m > state.max) {
    state.sum *= fast_exp2((state.max - m) * kLog2e);  // from −∞ (nothing yet): 0 · 0
    state.max = m;
  }
  // v − max before the scaling, not one fma with max·log2 e rounded: that rounding would be up to |max|·1e-7
  // of the exponent, all of it error in every term for large fp32 logits.
  float sum = 0.0f;
#pragma unroll
  for (int k = 0; k < N; ++k) sum += fast_exp2((v[k] - state.max) * kLog2e);
  state.sum += sum;
}

}  // namespace deepspeed::ops::detail
