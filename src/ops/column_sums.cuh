#pragma once
// Internal, for the ops/ kernels that sum columns over rows (the bias gradients, the LayerNorm parameters'
// gradients in two passes): a block of kLanes × kRows threads, each holding kVec running column sums of its
// share of the rows, writes one partial row of the sums for its part, folded over threadIdx.y in a fixed order.
#include <cstdint>

namespace deepspeed::ops::detail {

/// Every thread of the block calls it (it synchronises the block twice, so `fold` can be reused right after).
/// `fold` is the block's shared [kRows][kLanes · kVec] floats; the partial row goes to
/// parts_out[blockIdx.y · columns + column …], written by the threads with threadIdx.y = 0.
template <int kLanes, int kRows, int kVec>
__device__ __forceinline__ void write_partial_row(float (&fold)[kRows][kLanes * kVec], const float (&sum)[kVec],
                                                  float* __restrict__ parts_out, int column, int columns) {
#pragma unroll
  for (int k = 0; k < kVec; ++k) fold[threadIdx.y][threadIdx.x * kVec + k] = sum[k];
  __syncthreads();
  if (threadIdx.y == 0 && column < columns) {
    float* row = parts_out + static_cast<std::int64_t>(blockIdx.y) * columns + column;
#pragma unroll
    for (int k = 0; k < kVec; ++k) {
      float s = fold[0][threadIdx.x * kVec + k];
      for (int i = 1; i < kRows; ++i) s += fold[i][threadIdx.x * kVec + k];
      row[k] = s;
    }
  }
  __syncthreads();
}

}  // namespace deepspeed::ops::detail
