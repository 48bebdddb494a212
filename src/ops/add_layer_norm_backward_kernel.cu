// Fused residual-add + LayerNorm, backward: the input gradient per row and the parameters' gradients over all
// rows, in two kernels (partial rows per block, then a fixed-order fold), so the result does not depend on
// scheduling. Row layout and row sums: add_layer_norm_rows.cuh.
#include "src/ops/add_layer_norm_kernel.h"
#include "src/ops/add_layer_norm_fold.cuh"
#include "src/ops/add_layer_norm_rows.cuh"
#include "src/ops/cuda_convert.cuh"
#include "src/util/env.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

namespace deepspeed::ops::detail {
namespace {

using namespace row_layout;
using param_fold::fold_param_grads;

// Rows strided over a grid of resident blocks; each thread keeps the dweight/dbias sums of its columns over all
// its rows in registers and the block writes one partial row of each (summed over threadIdx.y in shared
// memory) to the workspace, which add_layer_norm_param_grads folds. No atomics: the result does not depend on
// scheduling. A row's dy, h and dh_out are loaded raw before its two row sums, the next row's dy and h too,
// so each thread has two rows' loads in flight across the barriers instead of one (x̂ and dy·w are
// recomputed from the raw values in the second pass rather than held as floats, which pays for the registers).
// kBranchBias adds a third sum, of the rounded dh (the branch bias's gradient); a template parameter rather
// than a null check so that the kernel without it keeps its registers. kPipelined (the default where it
// exists; DS_ADD_LAYER_NORM_PIPELINED=0 for the unpipelined kernel): the next row's dh_out is loaded with its dy
// and h (the 1.5B profile had this kernel at ~2.2 TB/s, and dh_out, loaded in the same iteration, was the load
// the second pass waited for), and the two row sums share one pair of barriers. The same arithmetic in the same
// order: the same bits.
template <typename T, typename P, int kPack, bool kBranchBias, bool kPipelined = false>
__global__ void __launch_bounds__(kMaxThreadsPerRow)
    add_layer_norm_backward(const T* __restrict__ dy, const T* __restrict__ h, const float* __restrict__ mean_in,
                            const float* __restrict__ rstd_in, const P* __restrict__ weight,
                            const T* __restrict__ dh_out, T* __restrict__ dh, float* __restrict__ dweight_parts,
                            float* __restrict__ dbias_parts, float* __restrict__ dbranch_parts, std::int64_t rows,
                            int columns) {
  constexpr int kIters = kElems / kPack;
  __shared__ float scratch[2 * kMaxThreadsPerRow / 32];
  const int packs = columns / kPack;
  float dw[kIters][kPack] = {}, db[kIters][kPack] = {}, dbb[kIters][kPack] = {};  // dbb unused without kBranchBias

  const std::int64_t step = static_cast<std::int64_t>(gridDim.x) * blockDim.y;
  // 16-bit packs only: with fp32 values (or element loads) the next row's registers would spill.
  constexpr bool kPrefetch = sizeof(T) < 4 && kPack > 1;
  constexpr bool kPrefetchOther = kPrefetch && kPipelined;
  Raw<T, kPack> h_raw[kIters], dy_raw[kIters], other_raw[kIters];
  auto load_row = [&](std::int64_t row) {  // a row's dy and h (and dh_out) into the *_raw (nothing past the end)
    if (row >= rows) return;
#pragma unroll
    for (int it = 0; it < kIters; ++it) {
      const int p = threadIdx.x + it * blockDim.x;
      if (p < packs) {
        load_raw(h + row * columns + p * kPack, h_raw[it]);
        load_raw(dy + row * columns + p * kPack, dy_raw[it]);
        if (kPrefetchOther && dh_out != nullptr) load_raw(dh_out + row * columns + p * kPack, other_raw[it]);
      }
    }
  };
  if constexpr (kPrefetch) load_row(static_cast<std::int64_t>(blockIdx.x) * blockDim.y + threadIdx.y);
  for (std::int64_t first = static_cast<std::int64_t>(blockIdx.x) * blockDim.y; first < rows; first += step) {
    const std::int64_t row = first + threadIdx.y;
    if constexpr (!kPrefetch) load_row(row);
    const bool active = row < rows;
    const std::int64_t base = active ? row * columns : 0;
    const float mean = active ? mean_in[row] : 0.0f, rstd = active ? rstd_in[row] : 0.0f;
    Raw<T, kPack> h_cur[kIters], dy_cur[kIters], other_cur[kIters];
#pragma unroll
    for (int it = 0; it < kIters; ++it) {
      h_cur[it] = h_raw[it];
      dy_cur[it] = dy_raw[it];
      const int p = threadIdx.x + it * blockDim.x;
      if constexpr (kPrefetchOther) {
        other_cur[it] = other_raw[it];
      } else if (active && dh_out != nullptr && p < packs) {
        load_raw(dh_out + base + p * kPack, other_cur[it]);
      }
    }
    if constexpr (kPrefetch) load_row(row + step);
    float sum_g = 0.0f, sum_gx = 0.0f;
#pragma unroll
    for (int it = 0; it < kIters; ++it) {
      const int p = threadIdx.x + it * blockDim.x;
      if (active && p < packs) {
        row_sum_terms<true>(h_cur[it], dy_cur[it], weight + p * kPack, mean, rstd, sum_g, sum_gx, dw[it], db[it]);
      }
    }
    float mean_g, mean_gx;
    if constexpr (kPipelined) {
      const float2 sums = row_sum2(sum_g, sum_gx, scratch);
      mean_g = sums.x / static_cast<float>(columns);
      mean_gx = sums.y / static_cast<float>(columns);
    } else {
      mean_g = row_sum(sum_g, scratch) / static_cast<float>(columns);
      mean_gx = row_sum(sum_gx, scratch) / static_cast<float>(columns);
    }
#pragma unroll
    for (int it = 0; it < kIters; ++it) {
      const int p = threadIdx.x + it * blockDim.x;
      if (active && p < packs) {
        float out[kPack];
        input_grad_pack(h_cur[it], dy_cur[it], other_cur[it], dh_out != nullptr, weight + p * kPack, mean, rstd,
                        mean_g, mean_gx, out);
        if constexpr (kBranchBias) {
#pragma unroll
          for (int k = 0; k < kPack; ++k) dbb[it][k] += round_to<T>(out[k]);  // the dh that is stored
        }
        store(dh + base + p * kPack, out);
      }
    }
  }

  float* dw_row = dweight_parts + static_cast<std::int64_t>(blockIdx.x) * columns;
  float* db_row = dbias_parts + static_cast<std::int64_t>(blockIdx.x) * columns;
  float* dbb_row = kBranchBias ? dbranch_parts + static_cast<std::int64_t>(blockIdx.x) * columns : nullptr;
  if (blockDim.y == 1) {
#pragma unroll
    for (int it = 0; it < kIters; ++it) {
      const int p = threadIdx.x + it * blockDim.x;
      if (p < packs) {
        store(dw_row + p * kPack, dw[it]);
        store(db_row + p * kPack, db[it]);
        if constexpr (kBranchBias) store(dbb_row + p * kPack, dbb[it]);
      }
    }
    return;
  }
  // Several rows per block (short rows, so 3·columns floats fit easily): fold the threadIdx.y groups in order.
  extern __shared__ float sums[];  // [2 or 3][columns]
  for (unsigned gy = 0; gy < blockDim.y; ++gy) {
    if (threadIdx.y == gy) {
#pragma unroll
      for (int it = 0; it < kIters; ++it) {
        const int p = threadIdx.x + it * blockDim.x;
        if (p < packs) {
#pragma unroll
          for (int k = 0; k < kPack; ++k) {
            const int c = p * kPack + k;
            sums[c] = gy == 0 ? dw[it][k] : sums[c] + dw[it][k];
            sums[columns + c] = gy == 0 ? db[it][k] : sums[columns + c] + db[it][k];
            if constexpr (kBranchBias) {
              sums[2 * columns + c] = gy == 0 ? dbb[it][k] : sums[2 * columns + c] + dbb[it][k];
            }
          }
        }
      }
    }
    __syncthreads();
  }
  for (int c = threadIdx.y * blockDim.x + threadIdx.x; c < columns; c += blockDim.x * blockDim.y) {
    dw_row[c] = sums[c];
    db_row[c] = sums[columns + c];
    if constexpr (kBranchBias) dbb_row[c] = sums[2 * columns + c];
  }
}

// The backward with dh_out prefetched and one reduction per row by default where it exists (without a branch
// bias, parameters in the inputs' dtype: the case GPT-2 runs; 7 % faster alone on an H100, 2026-12-05);
// DS_ADD_LAYER_NORM_PIPELINED=0 takes the unpipelined kernel. Read at every launch, as the ops' other switches are.
bool pipelined() {
  return !util::env_is("DS_ADD_LAYER_NORM_PIPELINED", "0");
}

template <typename T, typename P>
cudaError_t backward(const void* dy, const void* h, const float* mean, const float* rstd, const void* weight,
                     const void* dh_out, void* dh, void* dweight, void* dbias, void* dbranch_bias, float* workspace,
                     std::int64_t parts, std::int64_t rows, std::int64_t columns, cudaStream_t stream) {
  constexpr int kVec = 16 / sizeof(T);
  const bool vector = columns % kVec == 0 && aligned({dy, h, weight, dh_out, dh, workspace});
  const Shape s = shape_for(columns, vector ? kVec : 1);
  const std::int64_t blocks = std::min({(rows + s.rows - 1) / s.rows, parts, resident_blocks(s)});
  const bool branch = dbranch_bias != nullptr;
  float* dw_parts = workspace;
  float* db_parts = workspace + parts * columns;
  float* dbb_parts = branch ? workspace + 2 * parts * columns : nullptr;
  if (blocks > 0) {
    const dim3 block(s.threads, s.rows);
    const std::size_t shared = s.rows > 1 ? (branch ? 3 : 2) * columns * sizeof(float) : 0;
    const auto args = [&](auto kernel) {
      kernel<<<static_cast<unsigned>(blocks), block, shared, stream>>>(
          static_cast<const T*>(dy), static_cast<const T*>(h), mean, rstd, static_cast<const P*>(weight),
          static_cast<const T*>(dh_out), static_cast<T*>(dh), dw_parts, db_parts, dbb_parts, rows,
          static_cast<int>(columns));
    };
    if (vector && branch) {
      args(add_layer_norm_backward<T, P, kVec, true>);
    } else if (vector) {
      // Pipelined only where the parameters have the inputs' dtype (GPT-2's case). With fp32 parameters and
      // 16-bit inputs its dh came out a rounding apart from the default's (H200, 2026-12-05), so that case keeps
      // the default kernel, whose bits the switch then leaves as they are.
      if constexpr (std::is_same_v<T, P>) {
        args(pipelined() ? add_layer_norm_backward<T, P, kVec, false, true> : add_layer_norm_backward<T, P, kVec, false>);
      } else {
        args(add_layer_norm_backward<T, P, kVec, false>);
      }
    } else if (branch) {
      args(add_layer_norm_backward<T, P, 1, true>);
    } else {
      args(add_layer_norm_backward<T, P, 1, false>);
    }
  }
  fold_param_grads<P>(dw_parts, db_parts, dbb_parts, blocks, columns, dweight, dbias, dbranch_bias, stream);
  return cudaGetLastError();
}

}  // namespace

std::int64_t add_layer_norm_backward_parts(std::int64_t rows, std::int64_t columns) {
  // Threads per row depend on the values per row, not on the load width, so the element-wise shape bounds both.
  const Shape s = shape_for(std::clamp<std::int64_t>(columns, 1, kAddLayerNormMaxColumns), 1);
  const std::int64_t own = std::min((std::max<std::int64_t>(rows, 0) + s.rows - 1) / s.rows, resident_blocks(s));
  return add_layer_norm_wide_ahead() > 0 ? std::max(own, add_layer_norm_backward_wide_parts(rows, columns)) : own;
}

cudaError_t launch_add_layer_norm_backward(ElementType type, ElementType param_type, const void* dy, const void* h,
                                           const float* mean, const float* rstd, const void* weight,
                                           const void* dh_out, void* dh, void* dweight, void* dbias,
                                           void* dbranch_bias, float* workspace, std::int64_t parts, std::int64_t rows,
                                           std::int64_t columns, cudaStream_t stream) {
  if (columns < 1 || columns > kAddLayerNormMaxColumns || rows < 0 || parts < 0) return cudaErrorInvalidValue;
  if (util::env_is("DS_ADD_LAYER_NORM_SPLIT")) {
    return launch_add_layer_norm_backward_split(type, param_type, dy, h, mean, rstd, weight, dh_out, dh, dweight, dbias,
                                                dbranch_bias, workspace, parts, rows, columns, stream);
  }
  const int ahead = add_layer_norm_wide_ahead();
  if (ahead > 0 && add_layer_norm_wide_fits(type, columns, {dy, h, weight, dh_out, dh, workspace})) {
    return launch_add_layer_norm_backward_wide(type, param_type, dy, h, mean, rstd, weight, dh_out, dh, dweight, dbias,
                                               dbranch_bias, workspace, parts, rows, columns, ahead, stream);
  }
  return dispatch(type, param_type, [&](auto t, auto p) {
    using T = typename decltype(t)::type;
    using P = typename decltype(p)::type;
    return backward<T, P>(dy, h, mean, rstd, weight, dh_out, dh, dweight, dbias, dbranch_bias, workspace, parts,
                          rows, columns, stream);
  });
}

}  // namespace deepspeed::ops::detail
