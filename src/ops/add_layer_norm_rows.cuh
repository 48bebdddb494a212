#pragma once
// Internal to the add_layer_norm kernels (forward and backward .cu): how a row maps onto threads, and the sums
// over a row's threads. A row is handled by one group of threads (the block's x dimension: one warp for rows
// of up to 512 values, more warps for longer rows) that keeps the row in registers, 16 values per thread;
// short rows put several groups in one block (y dimension).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>

#include "src/ops/add_layer_norm_kernel.h"
#include "src/ops/cuda_convert.cuh"

namespace deepspeed::ops::detail::row_layout {

constexpr int kElems = 16;              // values a thread keeps of its row
constexpr int kMaxThreadsPerRow = 512;  // × kElems = kAddLayerNormMaxColumns; 512 leaves the backward 128 registers
constexpr int kGroupThreads = 128;      // threads per block when several short rows share one
static_assert(kElems * kMaxThreadsPerRow == kAddLayerNormMaxColumns);

__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Sum over the threads of one row (threadIdx.x), the same value in all of them. Every thread of the block must
// call it (it synchronises the block when a row spans several warps). `scratch`: blockDim.x·blockDim.y/32 floats.
__device__ __forceinline__ float row_sum(float v, float* scratch) {
  v = warp_sum(v);
  if (blockDim.x == 32) return v;
  const int warps = blockDim.x / 32;
  float* s = scratch + threadIdx.y * warps;
  __syncthreads();  // the previous call's readers are done with scratch
  if (threadIdx.x % 32 == 0) s[threadIdx.x / 32] = v;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < warps; ++w) total += s[w];  // same order in every thread: the same value
  return total;
}

// row_sum of two values at once: each is summed in row_sum's order (bit for bit its result), with one pair of
// barriers instead of two. `scratch`: 2·blockDim.x·blockDim.y/32 floats.
__device__ __forceinline__ float2 row_sum2(float a, float b, float* scratch) {
  a = warp_sum(a);
  b = warp_sum(b);
  if (blockDim.x == 32) return make_float2(a, b);
  const int warps = blockDim.x / 32;
  float* s = scratch + 2 * threadIdx.y * warps;
  __syncthreads();
  if (threadIdx.x % 32 == 0) {
    s[threadIdx.x / 32] = a;
    s[warps + threadIdx.x / 32] = b;
  }
  __syncthreads();
  float2 total = make_float2(0.0f, 0.0f);
  for (int w = 0; w < warps; ++w) {
    total.x += s[w];
    total.y += s[warps + w];
  }
  return total;
}

// One pack's terms of a row's two sums, Σ g and Σ g·x̂ (g = dy·weight, x̂ = (h − mean)·rstd), added in the pack's
// order; kParams: the pack's dweight and dbias terms too (d·x̂ and d, into the thread's column sums). Both
// backward kernels call it, so their row sums, and from them dh, are the same arithmetic.
template <bool kParams, typename T, typename P, int kPack>
__device__ __forceinline__ void row_sum_terms(const Raw<T, kPack>& h, const Raw<T, kPack>& dy, const P* weight,
                                              float mean, float rstd, float& sum_g, float& sum_gx,
                                              float (&dw)[kPack], float (&db)[kPack]) {
  float w[kPack];
  load(weight, w);
#pragma unroll
  for (int k = 0; k < kPack; ++k) {
    const float d = to_float(dy.v[k]);
    const float xhat = (to_float(h.v[k]) - mean) * rstd;
    const float g = d * w[k];
    sum_g += g;
    sum_gx += g * xhat;
    if constexpr (kParams) {
      dw[k] += d * xhat;
      db[k] += d;
    }
  }
}

// One pack of a row's input gradient, dh = dh_out + rstd·(g − mean(g) − x̂·mean(g·x̂)) with x̂ = (h − mean)·rstd and
// g = dy·weight, from the values as loaded (has_other false: no dh_out). Both backward kernels (the fused one
// and the split one) call it, so their dh is the same arithmetic.
template <typename T, typename P, int kPack>
__device__ __forceinline__ void input_grad_pack(const Raw<T, kPack>& h, const Raw<T, kPack>& dy,
                                                const Raw<T, kPack>& dh_out, bool has_other, const P* weight,
                                                float mean, float rstd, float mean_g, float mean_gx,
                                                float (&out)[kPack]) {
  float w[kPack];
  load(weight, w);
#pragma unroll
  for (int k = 0; k < kPack; ++k) {
    const float xhat = (to_float(h.v[k]) - mean) * rstd;
    const float g = to_float(dy.v[k]) * w[k];
    const float other = has_other ? to_float(dh_out.v[k]) : 0.0f;
    out[k] = other + rstd * (g - mean_g - xhat * mean_gx);
  }
}

// Threads per row (whole warps, each holding ≤ kElems values) and rows per block.
struct Shape {
  int threads;
  int rows;
};

inline Shape shape_for(std::int64_t columns, int pack) {
  const std::int64_t per_thread = kElems / pack;
  const std::int64_t packs = columns / pack;
  const std::int64_t needed = (packs + per_thread - 1) / per_thread;
  const int threads = static_cast<int>(std::max<std::int64_t>(32, (needed + 31) / 32 * 32));
  return {threads, threads >= kGroupThreads ? 1 : kGroupThreads / threads};
}

// Blocks of this shape the device holds at once, and no more: in the backward each block adds a partial row
// to fold. Its launch bound lets the backward use up to 128 registers a thread (it uses 100-120), so an SM
// holds 512 of its threads, not 2048: sized for 2048, the grid ran four waves and wrote four times the
// partial rows (GPT-2 1.5B: 2112 partial rows of 1600 columns per call, 2.1 ms of folding per step).
inline std::int64_t resident_blocks(Shape s) {
  return static_cast<std::int64_t>(device_sms()) * std::max(1, 512 / (s.threads * s.rows));
}

}  // namespace deepspeed::ops::detail::row_layout
