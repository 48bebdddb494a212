// ops::linear_chunks' backward: a fused QKV projection's three gradients (any chunks of one linear layer's output)
// put back side by side for the layer's GEMMs, with the bias gradient summed in the same pass. Autograd's path
// is a cat (read the chunks, write dy) and then a reduction that reads dy again; here dy is read from the chunks
// once. Memory-bound: 16-byte loads and stores where the chunk width and the pointers allow.
#include "src/ops/linear_chunks_kernel.h"

#include <algorithm>
#include <cstdint>

#include "src/ops/bias_gelu_kernel.h"
#include "src/ops/column_sums.cuh"
#include "src/ops/cuda_convert.cuh"

namespace deepspeed::ops::detail {
namespace {

// The block shape of bias_gelu_backward's column sums (kLanes × kRows threads, a thread's kVec columns), so the
// partial rows, and with the same fold the bias gradient, are launch_bias_grad's bit for bit.
constexpr int kLanes = 32, kRows = 8;
// Rows a thread loads before it stores the first: more bytes in flight; the sums still go in row order.
constexpr int kUnroll = 4;

template <typename T>
struct ChunkGrads {
  const T* chunk[kMaxLinearChunks];
};

// A thread's kVec columns lie in one chunk (width % kVec == 0 on the packed path; kVec = 1 otherwise).
template <typename T, int kVec>
__global__ void __launch_bounds__(kLanes* kRows)
    linear_chunks_copy(ChunkGrads<T> grads, int width, T* __restrict__ dy, float* __restrict__ parts_out,
                       std::int64_t rows, int columns) {
  __shared__ float fold[kRows][kLanes * kVec];
  const int column = (blockIdx.x * kLanes + threadIdx.x) * kVec;
  float sum[kVec] = {};
  if (column < columns) {
    const int c = column / width;
    // Selected, not indexed: a parameter array indexed at run time loses its pointers' global address space, and
    // the loads would be generic ones.
    const T* chunk = grads.chunk[0];
#pragma unroll
    for (int i = 1; i < kMaxLinearChunks; ++i) chunk = i == c ? grads.chunk[i] : chunk;
    const T* __restrict__ src = chunk + (column - c * width);
    T* __restrict__ dst = dy + column;
    const auto add = [&](const Raw<T, kVec>& g) {
#pragma unroll
      for (int k = 0; k < kVec; ++k) sum[k] += to_float(g.v[k]);
    };
    const std::int64_t stride = static_cast<std::int64_t>(gridDim.y) * kRows;
    std::int64_t r = static_cast<std::int64_t>(blockIdx.y) * kRows + threadIdx.y;
    for (; r + (kUnroll - 1) * stride < rows; r += kUnroll * stride) {
      Raw<T, kVec> g[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) load_raw<T, kVec>(src + (r + u * stride) * width, g[u]);
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        store_raw<T, kVec>(dst + (r + u * stride) * columns, g[u]);
        add(g[u]);
      }
    }
    for (; r < rows; r += stride) {
      Raw<T, kVec> g;
      load_raw<T, kVec>(src + r * width, g);
      store_raw<T, kVec>(dst + r * columns, g);
      add(g);
    }
  }
  write_partial_row<kLanes, kRows, kVec>(fold, sum, parts_out, column, columns);
}

template <typename T>
cudaError_t copy(const void* const* grads, int chunks, std::int64_t rows, std::int64_t width, void* dy,
                 float* workspace, std::int64_t parts, cudaStream_t stream) {
  constexpr int kVec = 16 / sizeof(T);
  ChunkGrads<T> table{};
  bool vector = width % kVec == 0 && aligned({dy});
  for (int c = 0; c < chunks; ++c) {
    table.chunk[c] = static_cast<const T*>(grads[c]);
    vector = vector && aligned({grads[c]});
  }
  const std::int64_t columns = chunks * width;
  const int vec = vector ? kVec : 1;
  const dim3 grid(static_cast<unsigned>((columns + kLanes * vec - 1) / (kLanes * vec)), static_cast<unsigned>(parts));
  const auto kernel = vector ? linear_chunks_copy<T, kVec> : linear_chunks_copy<T, 1>;
  kernel<<<grid, dim3(kLanes, kRows), 0, stream>>>(table, static_cast<int>(width), static_cast<T*>(dy), workspace,
                                                   rows, static_cast<int>(columns));
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_linear_chunks_backward(ElementType type, ElementType param_type, const void* const* grads,
                                          int chunks, std::int64_t rows, std::int64_t width, void* dy, void* dbias,
                                          float* workspace, std::int64_t parts, cudaStream_t stream) {
  if (chunks < 1 || chunks > kMaxLinearChunks || width < 1 || chunks * width > INT32_MAX || rows < 0 || parts < 1) {
    return cudaErrorInvalidValue;
  }
  const std::int64_t columns = chunks * width;
  return dispatch(type, param_type, [&](auto t, auto) {
    using T = typename decltype(t)::type;
    if (rows > 0) {
      const cudaError_t err = copy<T>(grads, chunks, rows, width, dy, workspace, parts, stream);
      if (err != cudaSuccess) return err;
    }
    return launch_bias_fold(param_type, workspace, rows > 0 ? parts : 0, columns, dbias, stream);
  });
}

}  // namespace deepspeed::ops::detail
