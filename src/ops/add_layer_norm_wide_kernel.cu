// Fused residual-add + LayerNorm backward with one 16-byte pack a thread (DS_ADD_LAYER_NORM_WIDE=1 or 2; opt-in:
// on an H100, 2026-12-05, 4-8 % faster alone at GPT-2's shapes, no gain resolved in the model). Why: the default
// kernel (add_layer_norm_backward_kernel.cu) gives a thread 16 values of its row and keeps their dweight/dbias
// sums in registers, ~120 of them, so an SM holds 16 of its warps; on an H200 it moved ~2.5 TB/s in the GPT-2
// 1.5B profile (42 µs a call for ~105 MB), the kernel of the step furthest from its bytes. Here a thread holds
// 8 values (one pack) of each row, so a row of 1600 values takes 7 warps and a thread needs about half the
// registers: more warps in flight a multiprocessor, and with DS_ADD_LAYER_NORM_WIDE=2 two rows' loads ahead
// instead of one. 16-bit inputs only (fp32 rows take the default).
//
// The arithmetic is the default kernel's (row_sum_terms, input_grad_pack, the fixed-order fold); its row sums
// are grouped over threads otherwise, so dh may differ from the default's in the last bit, and its grid (the
// blocks it holds resident) groups the parameters' partial sums otherwise. Deterministic all the same: a block
// walks its rows in order and the fold takes the blocks in order.
#include "src/ops/add_layer_norm_fold.cuh"
#include "src/ops/add_layer_norm_kernel.h"
#include "src/ops/add_layer_norm_rows.cuh"
#include "src/ops/cuda_convert.cuh"
#include "src/util/env.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>

namespace deepspeed::ops::detail {
namespace {

using namespace row_layout;
using param_fold::fold_param_grads;

constexpr int kWideMaxThreads = 256;  // one pack a thread: rows of up to 2048 16-bit values
// The launch bound's blocks of the widest shape per multiprocessor: 3 (≤ 80 registers a thread) with two rows
// ahead, 4 (≤ 64) with one. ptxas for sm_90: no spills without a branch bias; a few bytes with one.
constexpr int kWideMinBlocks = 3;

// One block per row at a time (blockDim.x threads, one pack each), rows strided over the grid. kAhead rows'
// dy, h, dh_out, mean and rstd are in flight while the current row is reduced; every thread of a block walks
// the same rows, so the barriers in row_sum2 are uniform.
template <typename T, typename P, bool kBranchBias, int kAhead>
__global__ void __launch_bounds__(kWideMaxThreads, kAhead == 1 ? kWideMinBlocks + 1 : kWideMinBlocks)
    add_layer_norm_backward_wide(const T* __restrict__ dy, const T* __restrict__ h, const float* __restrict__ mean_in,
                                 const float* __restrict__ rstd_in, const P* __restrict__ weight,
                                 const T* __restrict__ dh_out, T* __restrict__ dh, float* __restrict__ dweight_parts,
                                 float* __restrict__ dbias_parts, float* __restrict__ dbranch_parts, std::int64_t rows,
                                 int columns) {
  constexpr int kPack = 16 / sizeof(T);
  static_assert(sizeof(T) == 2 && kAhead >= 1);
  __shared__ float scratch[2 * kWideMaxThreads / 32];
  const int p = threadIdx.x;
  const bool lane = p < columns / kPack;
  const bool other = dh_out != nullptr;
  float dw[kPack] = {}, db[kPack] = {}, dbb[kPack] = {};  // dbb unused without kBranchBias

  struct Ahead {
    Raw<T, kPack> h, dy, other;
    float mean, rstd;
  };
  Ahead ring[kAhead];
  const auto load_row = [&](std::int64_t row, Ahead& a) {
    if (row >= rows) return;
    a.mean = mean_in[row];
    a.rstd = rstd_in[row];
    if (!lane) return;
    const std::int64_t at = row * columns + p * kPack;
    load_raw(h + at, a.h);
    load_raw(dy + at, a.dy);
    if (other) load_raw(dh_out + at, a.other);
  };
  const std::int64_t step = gridDim.x;
#pragma unroll
  for (int i = 0; i < kAhead; ++i) load_row(blockIdx.x + i * step, ring[i]);

  for (std::int64_t row = blockIdx.x; row < rows; row += step) {
    const Ahead cur = ring[0];
#pragma unroll
    for (int i = 0; i + 1 < kAhead; ++i) ring[i] = ring[i + 1];
    load_row(row + kAhead * step, ring[kAhead - 1]);

    float sum_g = 0.0f, sum_gx = 0.0f;
    if (lane) row_sum_terms<true>(cur.h, cur.dy, weight + p * kPack, cur.mean, cur.rstd, sum_g, sum_gx, dw, db);
    const float2 sums = row_sum2(sum_g, sum_gx, scratch);
    const float mean_g = sums.x / static_cast<float>(columns);
    const float mean_gx = sums.y / static_cast<float>(columns);
    if (lane) {
      float out[kPack];
      input_grad_pack(cur.h, cur.dy, cur.other, other, weight + p * kPack, cur.mean, cur.rstd, mean_g, mean_gx, out);
      if constexpr (kBranchBias) {
#pragma unroll
        for (int k = 0; k < kPack; ++k) dbb[k] += round_to<T>(out[k]);  // the dh that is stored
      }
      store(dh + row * columns + p * kPack, out);
    }
  }
  if (!lane) return;
  const std::int64_t at = static_cast<std::int64_t>(blockIdx.x) * columns + p * kPack;
  store(dweight_parts + at, dw);
  store(dbias_parts + at, db);
  if constexpr (kBranchBias) store(dbranch_parts + at, dbb);
}

template <typename T, typename P, bool kBranchBias>
auto wide_kernel(int ahead) {
  return ahead >= 2 ? add_layer_norm_backward_wide<T, P, kBranchBias, 2>
                    : add_layer_norm_backward_wide<T, P, kBranchBias, 1>;
}

int threads_for(std::int64_t columns, int pack) {
  return static_cast<int>((columns / pack + 31) / 32 * 32);
}

// Rows the kernel takes by width: whole 16-byte packs of 16-bit values, one a thread, at most a block of them.
constexpr int kPack16 = 8;
bool shape_fits(std::int64_t columns) {
  return columns >= kPack16 && columns % kPack16 == 0 && columns / kPack16 <= kWideMaxThreads;
}

// Blocks of the kernel the device holds at once (the grid: each block adds a partial row to fold).
template <typename T, typename P, bool kBranchBias>
std::int64_t wide_resident(int ahead, int threads) {
  return resident_blocks_of(wide_kernel<T, P, kBranchBias>(ahead), threads, 1);
}

}  // namespace

int add_layer_norm_wide_ahead() {
  if (util::env_is("DS_ADD_LAYER_NORM_WIDE", "2")) return 2;
  return util::env_is("DS_ADD_LAYER_NORM_WIDE") ? 1 : 0;
}

bool add_layer_norm_wide_fits(ElementType type, std::int64_t columns, std::initializer_list<const void*> pointers) {
  return type != ElementType::kFloat32 && shape_fits(columns) && aligned(pointers);
}

std::int64_t add_layer_norm_backward_wide_parts(std::int64_t rows, std::int64_t columns) {
  if (!shape_fits(columns)) return 0;
  // An upper bound of the blocks resident at once (a multiprocessor holds at most 2048 threads); the launch
  // takes the kernel's own residency, so only that many partial rows are written and folded.
  const std::int64_t per_sm = std::max(1, 2048 / threads_for(columns, kPack16));
  return std::min(std::max<std::int64_t>(rows, 0), static_cast<std::int64_t>(device_sms()) * per_sm);
}

cudaError_t launch_add_layer_norm_backward_wide(ElementType type, ElementType param_type, const void* dy,
                                                const void* h, const float* mean, const float* rstd,
                                                const void* weight, const void* dh_out, void* dh, void* dweight,
                                                void* dbias, void* dbranch_bias, float* workspace, std::int64_t parts,
                                                std::int64_t rows, std::int64_t columns, int ahead,
                                                cudaStream_t stream) {
  if (!add_layer_norm_wide_fits(type, columns, {dy, h, weight, dh_out, dh, workspace}) || parts < 0 || rows < 0) {
    return cudaErrorInvalidValue;
  }
  return dispatch(type, param_type, [&](auto t, auto pt) -> cudaError_t {
    using T = typename decltype(t)::type;
    using P = typename decltype(pt)::type;
    if constexpr (sizeof(T) != 2) {
      return cudaErrorInvalidValue;
    } else {
      const int threads = threads_for(columns, 16 / sizeof(T));
      const bool branch = dbranch_bias != nullptr;
      const std::int64_t resident =
          branch ? wide_resident<T, P, true>(ahead, threads) : wide_resident<T, P, false>(ahead, threads);
      const std::int64_t blocks = std::min({rows, parts, resident});
      float* dw_parts = workspace;
      float* db_parts = workspace + parts * columns;
      float* dbb_parts = branch ? workspace + 2 * parts * columns : nullptr;
      if (blocks > 0) {
        const auto kernel = branch ? wide_kernel<T, P, true>(ahead) : wide_kernel<T, P, false>(ahead);
        kernel<<<static_cast<unsigned>(blocks), threads, 0, stream>>>(
            static_cast<const T*>(dy), static_cast<const T*>(h), mean, rstd, static_cast<const P*>(weight),
            static_cast<const T*>(dh_out), static_cast<T*>(dh), dw_parts, db_parts, dbb_parts, rows,
            static_cast<int>(columns));
      }
      fold_param_grads<P>(dw_parts, db_parts, dbb_parts, blocks, columns, dweight, dbias, dbranch_bias, stream);
      return cudaGetLastError();
    }
  });
}

}  // namespace deepspeed::ops::detail
