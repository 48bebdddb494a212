// Fused residual-add + LayerNorm. A row is handled by one group of threads (the block's x dimension: one warp
// for rows of up to 512 values, more warps for longer rows) that keeps the row in registers, 16 values per
// thread, so the forward reads residual and branch once and the variance is a second pass over registers (the
// exact two-pass formula, no E[x²] − E[x]² cancellation). Short rows put several groups in one block (y
// dimension). Memory-bound; 16-byte loads and stores when the row length and pointers allow them.
#include "src/ops/add_layer_norm_kernel.h"
#include "src/ops/cuda_convert.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <initializer_list>

namespace deepspeed::ops::detail {
namespace {

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

// Rows strided over a grid of resident blocks; each thread keeps the dweight/dbias sums of its columns over all
// its rows in registers and the block writes one partial row of each (summed over threadIdx.y in shared
// memory) to the workspace, which add_layer_norm_param_grads folds. No atomics: the result does not depend on
// scheduling. A row's dy, h and dh_out are loaded raw before its two row sums, the next row's dy and h too,
// so each thread has two rows' loads in flight across the barriers instead of one (x̂ and dy·w are
// recomputed from the raw values in the second pass rather than held as floats, which pays for the registers).
// kBranchBias adds a third sum, of the rounded dh (the branch bias's gradient); a template parameter rather
// than a null check so that the kernel without it keeps its registers.
template <typename T, typename P, int kPack, bool kBranchBias>
__global__ void __launch_bounds__(kMaxThreadsPerRow)
    add_layer_norm_backward(const T* __restrict__ dy, const T* __restrict__ h, const float* __restrict__ mean_in,
                            const float* __restrict__ rstd_in, const P* __restrict__ weight,
                            const T* __restrict__ dh_out, T* __restrict__ dh, float* __restrict__ dweight_parts,
                            float* __restrict__ dbias_parts, float* __restrict__ dbranch_parts, std::int64_t rows,
                            int columns) {
  constexpr int kIters = kElems / kPack;
  __shared__ float scratch[kMaxThreadsPerRow / 32];
  const int packs = columns / kPack;
  float dw[kIters][kPack] = {}, db[kIters][kPack] = {}, dbb[kIters][kPack] = {};  // dbb unused without kBranchBias

  const std::int64_t step = static_cast<std::int64_t>(gridDim.x) * blockDim.y;
  Raw<T, kPack> h_raw[kIters], dy_raw[kIters], other_raw[kIters];
  auto load_row = [&](std::int64_t row) {  // a row's dy and h into h_raw/dy_raw (nothing past the end)
    if (row >= rows) return;
#pragma unroll
    for (int it = 0; it < kIters; ++it) {
      const int p = threadIdx.x + it * blockDim.x;
      if (p < packs) {
        load_raw(h + row * columns + p * kPack, h_raw[it]);
        load_raw(dy + row * columns + p * kPack, dy_raw[it]);
      }
    }
  };
  // 16-bit packs only: with fp32 values (or element loads) the next row's registers would spill.
  constexpr bool kPrefetch = sizeof(T) < 4 && kPack > 1;
  if constexpr (kPrefetch) load_row(static_cast<std::int64_t>(blockIdx.x) * blockDim.y + threadIdx.y);
  for (std::int64_t first = static_cast<std::int64_t>(blockIdx.x) * blockDim.y; first < rows; first += step) {
    const std::int64_t row = first + threadIdx.y;
    if constexpr (!kPrefetch) load_row(row);
    const bool active = row < rows;
    const std::int64_t base = active ? row * columns : 0;
    const float mean = active ? mean_in[row] : 0.0f, rstd = active ? rstd_in[row] : 0.0f;
    Raw<T, kPack> h_cur[kIters], dy_cur[kIters];
#pragma unroll
    for (int it = 0; it < kIters; ++it) {
      h_cur[it] = h_raw[it];
      dy_cur[it] = dy_raw[it];
      const int p = threadIdx.x + it * blockDim.x;
      if (active && dh_out != nullptr && p < packs) load_raw(dh_out + base + p * kPack, other_raw[it]);
    }
    if constexpr (kPrefetch) load_row(row + step);
    float sum_g = 0.0f, sum_gx = 0.0f;
#pragma unroll
    for (int it = 0; it < kIters; ++it) {
      const int p = threadIdx.x + it * blockDim.x;
      if (active && p < packs) {
        float w[kPack];
        load(weight + p * kPack, w);
#pragma unroll
        for (int k = 0; k < kPack; ++k) {
          const float d = to_float(dy_cur[it].v[k]);
          const float xhat = (to_float(h_cur[it].v[k]) - mean) * rstd;
          const float g = d * w[k];
          sum_g += g;
          sum_gx += g * xhat;
          dw[it][k] += d * xhat;
          db[it][k] += d;
        }
      }
    }
    const float mean_g = row_sum(sum_g, scratch) / static_cast<float>(columns);
    const float mean_gx = row_sum(sum_gx, scratch) / static_cast<float>(columns);
#pragma unroll
    for (int it = 0; it < kIters; ++it) {
      const int p = threadIdx.x + it * blockDim.x;
      if (active && p < packs) {
        float w[kPack], out[kPack];
        load(weight + p * kPack, w);
#pragma unroll
        for (int k = 0; k < kPack; ++k) {
          const float xhat = (to_float(h_cur[it].v[k]) - mean) * rstd;
          const float g = to_float(dy_cur[it].v[k]) * w[k];
          const float other = dh_out != nullptr ? to_float(other_raw[it].v[k]) : 0.0f;
          out[k] = other + rstd * (g - mean_g - xhat * mean_gx);
        }
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

// dweight[c] = Σ_parts dweight_parts[part, c] (and dbias, and dbranch_bias when dbranch_parts is not null),
// 32 columns per block, 16 threads down each column, then a fixed-order fold in shared memory.
constexpr int kFoldColumns = 32, kFoldLanes = 16;
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

// Threads per row (whole warps, each holding ≤ kElems values) and rows per block.
struct Shape {
  int threads;
  int rows;
};

Shape shape_for(std::int64_t columns, int pack) {
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
std::int64_t resident_blocks(Shape s) {
  return static_cast<std::int64_t>(device_sms()) * std::max(1, 512 / (s.threads * s.rows));
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
      args(add_layer_norm_backward<T, P, kVec, false>);
    } else if (branch) {
      args(add_layer_norm_backward<T, P, 1, true>);
    } else {
      args(add_layer_norm_backward<T, P, 1, false>);
    }
  }
  const auto fold_blocks = static_cast<unsigned>((columns + kFoldColumns - 1) / kFoldColumns);
  add_layer_norm_param_grads<P><<<fold_blocks, dim3(kFoldColumns, kFoldLanes), 0, stream>>>(
      dw_parts, db_parts, dbb_parts, blocks, static_cast<int>(columns), static_cast<P*>(dweight),
      static_cast<P*>(dbias), static_cast<P*>(dbranch_bias));
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

std::int64_t add_layer_norm_backward_parts(std::int64_t rows, std::int64_t columns) {
  // Threads per row depend on the values per row, not on the load width, so the element-wise shape bounds both.
  const Shape s = shape_for(std::clamp<std::int64_t>(columns, 1, kAddLayerNormMaxColumns), 1);
  return std::min((std::max<std::int64_t>(rows, 0) + s.rows - 1) / s.rows, resident_blocks(s));
}

cudaError_t launch_add_layer_norm_backward(ElementType type, ElementType param_type, const void* dy, const void* h,
                                           const float* mean, const float* rstd, const void* weight,
                                           const void* dh_out, void* dh, void* dweight, void* dbias,
                                           void* dbranch_bias, float* workspace, std::int64_t parts, std::int64_t rows,
                                           std::int64_t columns, cudaStream_t stream) {
  if (columns < 1 || columns > kAddLayerNormMaxColumns || rows < 0 || parts < 0) return cudaErrorInvalidValue;
  return dispatch(type, param_type, [&](auto t, auto p) {
    using T = typename decltype(t)::type;
    using P = typename decltype(p)::type;
    return backward<T, P>(dy, h, mean, rstd, weight, dh_out, dh, dweight, dbias, dbranch_bias, workspace, parts,
                          rows, columns, stream);
  });
}

}  // namespace deepspeed::ops::detail
