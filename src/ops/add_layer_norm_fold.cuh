#pragma once
// Internal to the add_layer_norm backward kernels (the fused one and the split one): the fold of the partial
// parameter-gradient rows their grids write, in a fixed order, into dweight, dbias and dbranch_bias.
#include <cuda_runtime_api.h>

#include <cstdint>

#include "src/ops/cuda_convert.cuh"

namespace deepspeed::ops::detail::param_fold {

// dweight[c] = Σ_parts dweight_parts[part, c] (and dbias, and dbranch_bias when dbranch_parts is not null),
// 32 columns per block, 16 threads down each column, then a fixed-order fold in shared memory.
inline constexpr int kFoldColumns = 32, kFoldLanes = 16;
template <typename P>
__global__ void __launch_bounds__(kFoldColumns* kFoldLanes)
    add_layer_norm_param_grads(const float* __restrict__ dweight_parts, const float* __restrict__ dbias_parts,
                               const float* __restrict__ dbranch_parts, std::int64_t parts, int columns,
                               P* __restrict__ dweight, P* __restrict__ dbias, P* __restrict__ dbranch_bias) {
  __shared__ float fold[3][kFoldLanes][kFoldColumns + 1];
  // The output decides: with no rows there are no parts (and no parts pointer), yet the gradient is zeros.
  const bool branch = dbranch_bias != nullptr;
  const int c = blockIdx.x * kFoldColumns + threadIdx.x;
  float sw = 0.0f, sb = 0.0f, sbb = 0.0f;
  if (c < columns) {
    for (std::int64_t i = threadIdx.y; i < parts; i += kFoldLanes) {
      sw += dweight_parts[i * columns + c];
      sb += dbias_parts[i * columns + c];
      if (branch) sbb += dbranch_parts[i * columns + c];
    }
  }
  fold[0][threadIdx.y][threadIdx.x] = sw;
  fold[1][threadIdx.y][threadIdx.x] = sb;
  fold[2][threadIdx.y][threadIdx.x] = sbb;
  __syncthreads();
  if (threadIdx.y == 0 && c < columns) {
    for (int i = 1; i < kFoldLanes; ++i) {
      sw += fold[0][i][threadIdx.x];
      sb += fold[1][i][threadIdx.x];
      sbb += fold[2][i][threadIdx.x];
    }
    dweight[c] = from_float<P>(sw);
    dbias[c] = from_float<P>(sb);
    if (branch) dbranch_bias[c] = from_float<P>(sbb);
  }
}

// Launches the fold of `parts` partial rows (each of dweight_parts, dbias_parts and, when dbranch_bias is not
// null, dbranch_parts) into the parameters' gradients, on `stream`. parts = 0 writes zeros.
template <typename P>
void fold_param_grads(const float* dweight_parts, const float* dbias_parts, const float* dbranch_parts,
                      std::int64_t parts, std::int64_t columns, void* dweight, void* dbias, void* dbranch_bias,
                      cudaStream_t stream) {
  const auto blocks = static_cast<unsigned>((columns + kFoldColumns - 1) / kFoldColumns);
  add_layer_norm_param_grads<P><<<blocks, dim3(kFoldColumns, kFoldLanes), 0, stream>>>(
      dweight_parts, dbias_parts, dbranch_parts, parts, static_cast<int>(columns), static_cast<P*>(dweight),
      static_cast<P*>(dbias), static_cast<P*>(dbranch_bias));
}

}  // namespace deepspeed::ops::detail::param_fold
