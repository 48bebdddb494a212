// Fused residual-add + LayerNorm, forward. Each row is kept in registers (add_layer_norm_rows.cuh), so the
// kernel reads residual and branch once and the variance is a second pass over registers (the exact two-pass
// formula, no E[x²] − E[x]² cancellation). Memory-bound; 16-byte loads and stores when the row length and
// pointers allow them. The backward is add_layer_norm_backward_kernel.cu.
#include "src/ops/add_layer_norm_kernel.h"
#include "src/ops/add_layer_norm_rows.cuh"
#include "src/ops/cuda_convert.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace deepspeed::ops::detail {
namespace {

using namespace row_layout;

// One row per (threadIdx.y, block); rows past the end still take part in row_sum's barriers. kBranchBias: add
// branch_bias to the branch as it is read.
template <typename T, typename P, int kPack, bool kBranchBias>
__global__ void __launch_bounds__(kMaxThreadsPerRow)
    add_layer_norm_forward(const T* __restrict__ residual, const T* __restrict__ branch,
                           const P* __restrict__ branch_bias, const P* __restrict__ weight, const P* __restrict__ bias,
                           T* __restrict__ h, T* __restrict__ y, float* __restrict__ mean_out,
                           float* __restrict__ rstd_out, std::int64_t rows, int columns, float eps) {
  constexpr int kIters = kElems / kPack;
  __shared__ float scratch[kMaxThreadsPerRow / 32];
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * blockDim.y + threadIdx.y;
  const bool active = row < rows;
  const std::int64_t base = active ? row * columns : 0;
  const int packs = columns / kPack;

  float v[kIters][kPack];  // the rounded h, as the unfused `residual + branch` would have stored it
  float sum = 0.0f;
#pragma unroll
  for (int it = 0; it < kIters; ++it) {
    const int p = threadIdx.x + it * blockDim.x;
    if (active && p < packs) {
      float a[kPack], b[kPack];
      load(residual + base + p * kPack, a);
      load(branch + base + p * kPack, b);
      if constexpr (kBranchBias) {
        float bb[kPack];
        load(branch_bias + p * kPack, bb);
#pragma unroll
        for (int k = 0; k < kPack; ++k) b[k] = round_to<T>(b[k] + bb[k]);  // as a biased GEMM output stored in T
      }
#pragma unroll
      for (int k = 0; k < kPack; ++k) {
        v[it][k] = to_float(from_float<T>(a[k] + b[k]));
        sum += v[it][k];
      }
      store(h + base + p * kPack, v[it]);
    }
  }
  const float mean = row_sum(sum, scratch) / static_cast<float>(columns);
  float squares = 0.0f;
#pragma unroll
  for (int it = 0; it < kIters; ++it) {
    if (active && threadIdx.x + it * blockDim.x < packs) {
#pragma unroll
      for (int k = 0; k < kPack; ++k) squares += (v[it][k] - mean) * (v[it][k] - mean);
    }
  }
  const float rstd = rsqrtf(row_sum(squares, scratch) / static_cast<float>(columns) + eps);
  if (active && threadIdx.x == 0) {
    mean_out[row] = mean;
    rstd_out[row] = rstd;
  }
#pragma unroll
  for (int it = 0; it < kIters; ++it) {
    const int p = threadIdx.x + it * blockDim.x;
    if (active && p < packs) {
      float w[kPack], b[kPack], out[kPack];
      load(weight + p * kPack, w);
      load(bias + p * kPack, b);
#pragma unroll
      for (int k = 0; k < kPack; ++k) out[k] = (v[it][k] - mean) * rstd * w[k] + b[k];
      store(y + base + p * kPack, out);
    }
  }
}

template <typename T, typename P>
cudaError_t forward(const void* residual, const void* branch, const void* branch_bias, const void* weight,
                    const void* bias, void* h, void* y, float* mean, float* rstd, std::int64_t rows,
                    std::int64_t columns, float eps, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  constexpr int kVec = 16 / sizeof(T);
  const bool vector = columns % kVec == 0 && aligned({residual, branch, branch_bias, weight, bias, h, y});
  const Shape s = shape_for(columns, vector ? kVec : 1);
  const dim3 block(s.threads, s.rows);
  const auto grid = static_cast<unsigned>((rows + s.rows - 1) / s.rows);
  const auto args = [&](auto kernel) {
    kernel<<<grid, block, 0, stream>>>(static_cast<const T*>(residual), static_cast<const T*>(branch),
                                       static_cast<const P*>(branch_bias), static_cast<const P*>(weight),
                                       static_cast<const P*>(bias), static_cast<T*>(h), static_cast<T*>(y), mean, rstd,
                                       rows, static_cast<int>(columns), eps);
  };
  const bool biased = branch_bias != nullptr;
  if (vector && biased) {
    args(add_layer_norm_forward<T, P, kVec, true>);
  } else if (vector) {
    args(add_layer_norm_forward<T, P, kVec, false>);
  } else if (biased) {
    args(add_layer_norm_forward<T, P, 1, true>);
  } else {
    args(add_layer_norm_forward<T, P, 1, false>);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_add_layer_norm_forward(ElementType type, ElementType param_type, const void* residual,
                                          const void* branch, const void* branch_bias, const void* weight,
                                          const void* bias, void* h, void* y, float* mean, float* rstd,
                                          std::int64_t rows, std::int64_t columns, float eps, cudaStream_t stream) {
  if (columns < 1 || columns > kAddLayerNormMaxColumns || rows < 0) return cudaErrorInvalidValue;
  return dispatch(type, param_type, [&](auto t, auto p) {
    using T = typename decltype(t)::type;
    using P = typename decltype(p)::type;
    return forward<T, P>(residual, branch, branch_bias, weight, bias, h, y, mean, rstd, rows, columns, eps, stream);
  });
}

}  // namespace deepspeed::ops::detail
