// Fused bias + GELU (tanh) for a transformer MLP's first projection, whose GEMM then runs without its bias.
// Forward: one elementwise pass. Backward: the bias gradient is summed while dx is written, so the gradient is
// read once; unfused, autograd reduces dx over the rows for the bias in a second pass over the widest
// activation of the block. Memory-bound; 16-byte loads and stores where the row length and pointers allow.
#include "src/ops/bias_gelu_kernel.h"
#include "src/ops/column_sums.cuh"
#include "src/ops/cuda_convert.cuh"
#include "src/ops/gelu_math.cuh"
#include "src/ops/grid_stride.cuh"
#include "src/util/env.h"

#include <algorithm>
#include <cstdint>
#include <type_traits>

namespace deepspeed::ops::detail {
namespace {

// kUnroll > 1 (the default; DS_BIAS_GELU_UNROLL=1 for one, below): each thread loads that many packs before
// computing the first, so more bytes are in flight per thread; every pack still takes the same arithmetic, so y is
// the same bit for bit. A pack's bias column is carried from one grid stride to the next (ColumnCursor,
// grid_stride.cuh).
template <typename T, typename P, int kVec, int kUnroll, bool kFast>
__global__ void bias_gelu_forward(const T* x, const P* __restrict__ bias, T* y, std::int64_t packs, int columns) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  const auto one = [&](std::int64_t first, unsigned column, const Raw<T, kVec>& raw) {
    float v[kVec], b[kVec];
    load<P, kVec>(bias + column, b);
#pragma unroll
    for (int k = 0; k < kVec; ++k) v[k] = gelu<kFast>(round_to<T>(to_float(raw.v[k]) + b[k]));
    store<T, kVec>(y + first, v);
  };
  std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  ColumnCursor cursor(i, stride, kVec, columns);
  for (; i + (kUnroll - 1) * stride < packs; i += kUnroll * stride) {
    Raw<T, kVec> raw[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) load_raw<T, kVec>(x + (i + u * stride) * kVec, raw[u]);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      one((i + u * stride) * kVec, cursor.column, raw[u]);
      cursor.advance();
    }
  }
  for (; i < packs; i += stride) {
    Raw<T, kVec> raw;
    load_raw<T, kVec>(x + i * kVec, raw);
    one(i * kVec, cursor.column, raw);
    cursor.advance();
  }
}

// A block covers kLanes × kVec columns and kRows rows at a time; blockIdx.y picks a slice of the rows (a part).
// Each thread keeps kVec running column sums; the block folds them over threadIdx.y in a fixed order and
// writes one partial row of the bias gradient.
constexpr int kLanes = 32, kRows = 8;

// What the backward kernel computes: a plain bias gradient (no GELU), or GELU's with tanhf's form or the σ form.
enum class Derivative { kNone, kTanhf, kSigmoid };

// One row's pack: dx = round(dy · GELU'(round(x + b))) (a GELU; stored) or dy itself, added to the column sums.
template <typename T, int kVec, Derivative kDerivative>
__device__ __forceinline__ void backward_pack(const Raw<T, kVec>& dy, const Raw<T, kVec>& x, const float (&b)[kVec],
                                              T* dx, float (&sum)[kVec]) {
  float g[kVec];
#pragma unroll
  for (int k = 0; k < kVec; ++k) g[k] = to_float(dy.v[k]);
  if constexpr (kDerivative != Derivative::kNone) {
    constexpr bool kFast = kDerivative == Derivative::kSigmoid;
#pragma unroll
    for (int k = 0; k < kVec; ++k) g[k] = round_to<T>(g[k] * gelu_grad<kFast>(round_to<T>(to_float(x.v[k]) + b[k])));
    store<T, kVec>(dx, g);
  }
#pragma unroll
  for (int k = 0; k < kVec; ++k) sum[k] += g[k];
}

// Derivative::kNone: a plain linear layer's bias gradient, Σ_rows dy (x, bias and dx unused), read once. kUnroll > 1:
// that many of a thread's rows are loaded before the first is used (more bytes in flight); they are still
// added in row order, so every sum is the same bit for bit.
template <typename T, typename P, int kVec, Derivative kDerivative, int kUnroll>
__global__ void __launch_bounds__(kLanes* kRows)
    bias_gelu_backward(const T* dy, const T* __restrict__ x, const P* __restrict__ bias, T* dx,
                       float* __restrict__ parts_out, std::int64_t rows, int columns) {
  __shared__ float fold[kRows][kLanes * kVec];
  const int column = (blockIdx.x * kLanes + threadIdx.x) * kVec;
  float b[kVec] = {}, sum[kVec] = {};
  constexpr bool kGelu = kDerivative != Derivative::kNone;
  if (column < columns) {
    if constexpr (kGelu) load<P, kVec>(bias + column, b);
    const std::int64_t stride = static_cast<std::int64_t>(gridDim.y) * kRows;
    std::int64_t r = static_cast<std::int64_t>(blockIdx.y) * kRows + threadIdx.y;
    for (; r + (kUnroll - 1) * stride < rows; r += kUnroll * stride) {
      Raw<T, kVec> g[kUnroll], v[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const std::int64_t at = (r + u * stride) * columns + column;
        load_raw<T, kVec>(dy + at, g[u]);
        if constexpr (kGelu) load_raw<T, kVec>(x + at, v[u]);
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        T* out = kGelu ? dx + (r + u * stride) * columns + column : nullptr;  // no dx for a bias gradient alone
        backward_pack<T, kVec, kDerivative>(g[u], v[u], b, out, sum);
      }
    }
    for (; r < rows; r += stride) {
      const std::int64_t at = r * columns + column;
      Raw<T, kVec> g, v;
      load_raw<T, kVec>(dy + at, g);
      if constexpr (kGelu) load_raw<T, kVec>(x + at, v);
      backward_pack<T, kVec, kDerivative>(g, v, b, kGelu ? dx + at : nullptr, sum);
    }
  }
  write_partial_row<kLanes, kRows, kVec>(fold, sum, parts_out, column, columns);
}

// dbias[c] = Σ_parts parts[p, c] in part order, one thread per column. A thread's loads do not depend on each
// other, so they go out kFoldGroup at a time, all before the group's additions (the last group's spare loads
// reread the last part and are not added), rather than four at a time and a remainder loop of one load a round
// trip: ~40-60 parts (GPT-2's widths on 132 SMs) take three or four round trips to L2 instead of about a dozen
// (sm_90 SASS, bench/kernel_sass.py). The additions stay in part order and a spare load is never added, so the
// sum is exactly the one-at-a-time loop's.
constexpr int kFoldGroup = 16;
template <typename P>
__global__ void bias_gelu_fold(const float* __restrict__ parts_in, std::int64_t parts, int columns, P* dbias) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= columns) return;
  float s = 0.0f;
  for (std::int64_t p = 0; p < parts; p += kFoldGroup) {
    float v[kFoldGroup];
#pragma unroll
    for (int k = 0; k < kFoldGroup; ++k) v[k] = parts_in[min(p + k, parts - 1) * columns + c];  // no branch
#pragma unroll
    for (int k = 0; k < kFoldGroup; ++k) {
      if (p + k < parts) s += v[k];
    }
  }
  dbias[c] = from_float<P>(s);
}

std::int64_t column_tiles(std::int64_t columns, int vec) { return (columns + kLanes * vec - 1) / (kLanes * vec); }

// The unrolled kernels by default (the same results, more loads in flight per thread, more registers per thread;
// backward 7 % faster alone on an H100, 2026-12-05, forward even); DS_BIAS_GELU_UNROLL=1 takes the kernels with
// one load in flight per thread. Read at every launch, as the ops' other switches are.
bool unrolled() {
  return !util::env_is("DS_BIAS_GELU_UNROLL", "1");
}

// 16-bit inputs take the σ form of GELU unless DS_BIAS_GELU_TANHF=1 (tanhf's form, as before 2026-12-05: kept to
// measure the two against each other); fp32 inputs always take tanhf's, bit for bit ATen's.
template <typename T, typename Launch>
void with_gelu_form(Launch launch) {
  if constexpr (sizeof(T) == 2) {
    if (!util::env_is("DS_BIAS_GELU_TANHF", "1")) return launch(std::true_type{});
  }
  launch(std::false_type{});
}

template <typename T, typename P>
cudaError_t forward(const void* x, const void* bias, void* y, std::int64_t rows, std::int64_t columns,
                    cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  constexpr int kVec = 16 / sizeof(T);
  const bool vector = columns % kVec == 0 && aligned({x, bias, y});
  const int vec = vector ? kVec : 1;
  const std::int64_t packs = rows * columns / vec;
  constexpr int kThreads = 256;
  const auto args = [&](auto kernel) {
    // One wave of the blocks the SMs hold at once (the grid strides over the rest): 8 of the plain kernel per SM,
    // fewer of the unrolled one, whose registers limit it. Elementwise, so the grid does not change the results.
    const auto blocks = static_cast<unsigned>(
        std::min<std::int64_t>((packs + kThreads - 1) / kThreads, resident_blocks_of(kernel, kThreads, 8)));
    kernel<<<blocks, kThreads, 0, stream>>>(static_cast<const T*>(x), static_cast<const P*>(bias), static_cast<T*>(y),
                                            packs, static_cast<int>(columns));
  };
  with_gelu_form<T>([&](auto fast) {
    constexpr bool kFast = decltype(fast)::value;
    if (vector) {
      args(unrolled() ? bias_gelu_forward<T, P, kVec, 4, kFast> : bias_gelu_forward<T, P, kVec, 1, kFast>);
    } else {
      args(bias_gelu_forward<T, P, 1, 1, kFast>);
    }
  });
  return cudaGetLastError();
}

template <typename P>
cudaError_t fold(const float* workspace, std::int64_t parts, std::int64_t columns, void* dbias, cudaStream_t stream) {
  constexpr int kFoldThreads = 256;
  bias_gelu_fold<P><<<static_cast<unsigned>((columns + kFoldThreads - 1) / kFoldThreads), kFoldThreads, 0, stream>>>(
      workspace, parts, static_cast<int>(columns), static_cast<P*>(dbias));
  return cudaGetLastError();
}

template <typename T, typename P, bool kGelu = true>
cudaError_t backward(const void* dy, const void* x, const void* bias, void* dx, void* dbias, float* workspace,
                     std::int64_t parts, std::int64_t rows, std::int64_t columns, cudaStream_t stream) {
  constexpr int kVec = 16 / sizeof(T);
  const bool vector = columns % kVec == 0 && aligned({dy, x, bias, dx});  // null pointers count as aligned
  if (rows > 0 && parts > 0) {
    const dim3 grid(static_cast<unsigned>(column_tiles(columns, vector ? kVec : 1)), static_cast<unsigned>(parts));
    const auto args = [&](auto kernel) {
      kernel<<<grid, dim3(kLanes, kRows), 0, stream>>>(static_cast<const T*>(dy), static_cast<const T*>(x),
                                                       static_cast<const P*>(bias), static_cast<T*>(dx), workspace,
                                                       rows, static_cast<int>(columns));
    };
    const auto pick = [&](auto derivative) {
      constexpr Derivative kDerivative = decltype(derivative)::value;
      if (vector) {
        args(unrolled() ? bias_gelu_backward<T, P, kVec, kDerivative, 4>
                        : bias_gelu_backward<T, P, kVec, kDerivative, 1>);
      } else {
        args(bias_gelu_backward<T, P, 1, kDerivative, 1>);
      }
    };
    if constexpr (kGelu) {
      with_gelu_form<T>([&](auto fast) {
        pick(std::integral_constant<Derivative, decltype(fast)::value ? Derivative::kSigmoid : Derivative::kTanhf>{});
      });
    } else {
      pick(std::integral_constant<Derivative, Derivative::kNone>{});
    }
  }
  return fold<P>(workspace, rows > 0 ? parts : 0, columns, dbias, stream);
}

}  // namespace

cudaError_t launch_bias_gelu_forward(ElementType type, ElementType param_type, const void* x, const void* bias,
                                     void* y, std::int64_t rows, std::int64_t columns, cudaStream_t stream) {
  if (columns < 1 || columns > INT32_MAX || rows < 0) return cudaErrorInvalidValue;
  return dispatch(type, param_type, [&](auto t, auto p) {
    using T = typename decltype(t)::type;
    using P = typename decltype(p)::type;
    return forward<T, P>(x, bias, y, rows, columns, stream);
  });
}

std::int64_t bias_gelu_backward_parts(std::int64_t rows, std::int64_t columns) {
  // Enough blocks to fill the device (8 of 256 threads per SM) with the widest loads (the fewest column tiles;
  // element loads then launch more blocks, which is harmless), and at least one row group per part. The
  // unrolled kernels (the default) and the single-load ones (DS_BIAS_GELU_UNROLL=1) get the same parts, so their
  // sums are the same bit for bit; the unrolled kernels' registers let 4 to 6 blocks per SM run at once, so they
  // take two waves of the same size.
  const std::int64_t resident = static_cast<std::int64_t>(device_sms()) * 8;
  const std::int64_t tiles = column_tiles(std::max<std::int64_t>(columns, 1), 8);
  const std::int64_t row_groups = (std::max<std::int64_t>(rows, 0) + kRows - 1) / kRows;
  return std::max<std::int64_t>(1, std::min(row_groups, std::max<std::int64_t>(1, resident / tiles)));
}

cudaError_t launch_bias_gelu_backward(ElementType type, ElementType param_type, const void* dy, const void* x,
                                      const void* bias, void* dx, void* dbias, float* workspace, std::int64_t parts,
                                      std::int64_t rows, std::int64_t columns, cudaStream_t stream) {
  if (columns < 1 || columns > INT32_MAX || rows < 0 || parts < 1) return cudaErrorInvalidValue;
  return dispatch(type, param_type, [&](auto t, auto p) {
    using T = typename decltype(t)::type;
    using P = typename decltype(p)::type;
    return backward<T, P>(dy, x, bias, dx, dbias, workspace, parts, rows, columns, stream);
  });
}

cudaError_t launch_bias_grad(ElementType type, ElementType param_type, const void* dy, void* dbias, float* workspace,
                             std::int64_t parts, std::int64_t rows, std::int64_t columns, cudaStream_t stream) {
  if (columns < 1 || columns > INT32_MAX || rows < 0 || parts < 1) return cudaErrorInvalidValue;
  return dispatch(type, param_type, [&](auto t, auto p) {
    using T = typename decltype(t)::type;
    using P = typename decltype(p)::type;
    return backward<T, P, false>(dy, nullptr, nullptr, nullptr, dbias, workspace, parts, rows, columns, stream);
  });
}

cudaError_t launch_bias_fold(ElementType param_type, const float* workspace, std::int64_t parts, std::int64_t columns,
                             void* dbias, cudaStream_t stream) {
  if (columns < 1 || columns > INT32_MAX || parts < 0) return cudaErrorInvalidValue;
  switch (param_type) {
    case ElementType::kFloat32: return fold<float>(workspace, parts, columns, dbias, stream);
    case ElementType::kFloat16: return fold<__half>(workspace, parts, columns, dbias, stream);
    case ElementType::kBFloat16: return fold<__nv_bfloat16>(workspace, parts, columns, dbias, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace deepspeed::ops::detail
