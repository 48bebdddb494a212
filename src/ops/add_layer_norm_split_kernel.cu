// Fused residual-add + LayerNorm, backward in two passes (DS_ADD_LAYER_NORM_SPLIT=1; an experiment, off until
// measured). The fused backward (add_layer_norm_backward_kernel.cu) reads dy and h once, but each thread keeps
// its columns' dweight and dbias sums in registers across its rows: ~123 registers, so an SM holds 512 of its
// threads (4 rows of GPT-2 1.5B in flight), and its loop issues ~60 instructions a value; in the 1.5B profile
// it moved 2.2 TB/s. Here:
//  1. input_grad: dh per row, with no parameter sums, one row per (block, threadIdx.y) as in the forward, a
//     grid of every row group: few registers, many rows in flight. The same per-thread and per-row sums in the
//     same order as the fused kernel, so dh is computed by the same arithmetic.
//  2. param_columns: dweight = Σ dy·x̂, dbias = Σ dy (and the branch bias's Σ dh, from the dh pass 1 stored) as
//     column sums over the rows, the bias-gradient kernel's layout (bias_gelu_kernel.cu): dy and h (and dh) are
//     read a second time, ~4 more bytes a value, for a pass that needs ~6 instructions a value. Partial rows per
//     block, folded in a fixed order (add_layer_norm_fold.cuh): deterministic, no atomics.
#include "src/ops/add_layer_norm_fold.cuh"
#include "src/ops/add_layer_norm_kernel.h"
#include "src/ops/add_layer_norm_rows.cuh"
#include "src/ops/column_sums.cuh"
#include "src/ops/cuda_convert.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>

namespace deepspeed::ops::detail {
namespace {

using namespace row_layout;
using param_fold::fold_param_grads;

// Rows past the end still take part in row_sum's barriers.
template <typename T, typename P, int kPack>
__global__ void __launch_bounds__(kMaxThreadsPerRow)
    add_layer_norm_input_grad(const T* __restrict__ dy, const T* __restrict__ h, const float* __restrict__ mean_in,
                              const float* __restrict__ rstd_in, const P* __restrict__ weight,
                              const T* __restrict__ dh_out, T* __restrict__ dh, std::int64_t rows, int columns) {
  constexpr int kIters = kElems / kPack;
  __shared__ float scratch[kMaxThreadsPerRow / 32];
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * blockDim.y + threadIdx.y;
  const bool active = row < rows;
  const std::int64_t base = active ? row * columns : 0;
  const int packs = columns / kPack;
  const float mean = active ? mean_in[row] : 0.0f, rstd = active ? rstd_in[row] : 0.0f;
  Raw<T, kPack> h_raw[kIters], dy_raw[kIters], other_raw[kIters];
#pragma unroll
  for (int it = 0; it < kIters; ++it) {
    const int p = threadIdx.x + it * blockDim.x;
    if (active && p < packs) {
      load_raw(h + base + p * kPack, h_raw[it]);
      load_raw(dy + base + p * kPack, dy_raw[it]);
      if (dh_out != nullptr) load_raw(dh_out + base + p * kPack, other_raw[it]);
    }
  }
  float sum_g = 0.0f, sum_gx = 0.0f;
  float unused[kPack];  // row_sum_terms<false> takes no parameter sums
#pragma unroll
  for (int it = 0; it < kIters; ++it) {
    const int p = threadIdx.x + it * blockDim.x;
    if (active && p < packs) {
      row_sum_terms<false>(h_raw[it], dy_raw[it], weight + p * kPack, mean, rstd, sum_g, sum_gx, unused, unused);
    }
  }
  const float mean_g = row_sum(sum_g, scratch) / static_cast<float>(columns);
  const float mean_gx = row_sum(sum_gx, scratch) / static_cast<float>(columns);
#pragma unroll
  for (int it = 0; it < kIters; ++it) {
    const int p = threadIdx.x + it * blockDim.x;
    if (active && p < packs) {
      float out[kPack];
      input_grad_pack(h_raw[it], dy_raw[it], other_raw[it], dh_out != nullptr, weight + p * kPack, mean, rstd, mean_g,
                      mean_gx, out);
      store(dh + base + p * kPack, out);
    }
  }
}

// A block covers kLanes × kVec columns and kRows rows at a time; blockIdx.y picks a slice of the rows (a part).
// Each thread keeps kVec running sums of each kind; the block folds them over threadIdx.y in a fixed order and
// writes one partial row of each to the workspace.
constexpr int kLanes = 32, kRows = 8;

template <typename T, int kVec, bool kBranchBias>
__global__ void __launch_bounds__(kLanes* kRows)
    add_layer_norm_param_columns(const T* __restrict__ dy, const T* __restrict__ h, const float* __restrict__ mean_in,
                                 const float* __restrict__ rstd_in, const T* __restrict__ dh,
                                 float* __restrict__ dweight_parts, float* __restrict__ dbias_parts,
                                 float* __restrict__ dbranch_parts, std::int64_t rows, int columns) {
  __shared__ float fold[kRows][kLanes * kVec];
  const int column = (blockIdx.x * kLanes + threadIdx.x) * kVec;
  float dw[kVec] = {}, db[kVec] = {}, dbb[kVec] = {};  // dbb unused without kBranchBias
  if (column < columns) {
    const std::int64_t stride = static_cast<std::int64_t>(gridDim.y) * kRows;
    // Unrolled so that several rows' loads are in flight before the first is added; the sums still take the
    // rows in order.
#pragma unroll 4
    for (std::int64_t r = static_cast<std::int64_t>(blockIdx.y) * kRows + threadIdx.y; r < rows; r += stride) {
      const std::int64_t at = r * columns + column;
      Raw<T, kVec> d_raw, h_raw, dh_raw;
      load_raw(dy + at, d_raw);
      load_raw(h + at, h_raw);
      if constexpr (kBranchBias) load_raw(dh + at, dh_raw);
      const float mean = mean_in[r], rstd = rstd_in[r];
#pragma unroll
      for (int k = 0; k < kVec; ++k) {
        const float d = to_float(d_raw.v[k]);
        dw[k] += d * ((to_float(h_raw.v[k]) - mean) * rstd);
        db[k] += d;
        if constexpr (kBranchBias) dbb[k] += to_float(dh_raw.v[k]);
      }
    }
  }
  write_partial_row<kLanes, kRows, kVec>(fold, dw, dweight_parts, column, columns);
  write_partial_row<kLanes, kRows, kVec>(fold, db, dbias_parts, column, columns);
  if constexpr (kBranchBias) write_partial_row<kLanes, kRows, kVec>(fold, dbb, dbranch_parts, column, columns);
}

template <typename T, typename P>
cudaError_t backward_split(const void* dy, const void* h, const float* mean, const float* rstd, const void* weight,
                           const void* dh_out, void* dh, void* dweight, void* dbias, void* dbranch_bias,
                           float* workspace, std::int64_t capacity, std::int64_t rows, std::int64_t columns,
                           cudaStream_t stream) {
  constexpr int kVec = 16 / sizeof(T);
  const bool vector = columns % kVec == 0 && aligned({dy, h, weight, dh_out, dh, workspace});
  const bool branch = dbranch_bias != nullptr;
  float* dw_parts = workspace;
  float* db_parts = workspace + capacity * columns;
  float* dbb_parts = branch ? workspace + 2 * capacity * columns : nullptr;
  std::int64_t parts = 0;
  if (rows > 0 && capacity > 0) {
    const Shape s = shape_for(columns, vector ? kVec : 1);
    const auto row_blocks = static_cast<unsigned>((rows + s.rows - 1) / s.rows);
    const auto rows_args = [&](auto kernel) {
      kernel<<<row_blocks, dim3(s.threads, s.rows), 0, stream>>>(
          static_cast<const T*>(dy), static_cast<const T*>(h), mean, rstd, static_cast<const P*>(weight),
          static_cast<const T*>(dh_out), static_cast<T*>(dh), rows, static_cast<int>(columns));
    };
    if (vector) {
      rows_args(add_layer_norm_input_grad<T, P, kVec>);
    } else {
      rows_args(add_layer_norm_input_grad<T, P, 1>);
    }
    // One wave of the column kernel's blocks, at most one row group per part, at most the workspace's rows.
    const int vec = vector ? kVec : 1;
    const std::int64_t tiles = (columns + kLanes * vec - 1) / (kLanes * vec);
    const auto columns_args = [&](auto kernel) {
      const std::int64_t resident = resident_blocks_of(kernel, kLanes * kRows, 4);
      parts = std::max<std::int64_t>(
          1, std::min({capacity, (rows + kRows - 1) / kRows, std::max<std::int64_t>(1, resident / tiles)}));
      kernel<<<dim3(static_cast<unsigned>(tiles), static_cast<unsigned>(parts)), dim3(kLanes, kRows), 0, stream>>>(
          static_cast<const T*>(dy), static_cast<const T*>(h), mean, rstd, static_cast<const T*>(dh), dw_parts,
          db_parts, dbb_parts, rows, static_cast<int>(columns));
    };
    if (vector && branch) {
      columns_args(add_layer_norm_param_columns<T, kVec, true>);
    } else if (vector) {
      columns_args(add_layer_norm_param_columns<T, kVec, false>);
    } else if (branch) {
      columns_args(add_layer_norm_param_columns<T, 1, true>);
    } else {
      columns_args(add_layer_norm_param_columns<T, 1, false>);
    }
  }
  fold_param_grads<P>(dw_parts, db_parts, dbb_parts, parts, columns, dweight, dbias, dbranch_bias, stream);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_add_layer_norm_backward_split(ElementType type, ElementType param_type, const void* dy,
                                                 const void* h, const float* mean, const float* rstd,
                                                 const void* weight, const void* dh_out, void* dh, void* dweight,
                                                 void* dbias, void* dbranch_bias, float* workspace,
                                                 std::int64_t parts, std::int64_t rows, std::int64_t columns,
                                                 cudaStream_t stream) {
  if (columns < 1 || columns > kAddLayerNormMaxColumns || rows < 0 || parts < 0) return cudaErrorInvalidValue;
  return dispatch(type, param_type, [&](auto t, auto p) {
    using T = typename decltype(t)::type;
    using P = typename decltype(p)::type;
    return backward_split<T, P>(dy, h, mean, rstd, weight, dh_out, dh, dweight, dbias, dbranch_bias, workspace,
                                parts, rows, columns, stream);
  });
}

}  // namespace deepspeed::ops::detail
