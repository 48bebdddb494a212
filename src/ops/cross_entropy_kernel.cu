// Fused cross-entropy: the forward is one block per row, two passes over the row (the second mostly from
// L2): an online max/sum-exp in fp32, then the gradient for an incoming gradient of 1, written in the logits'
// type. Memory-bound; 16-byte loads and stores when the row allows them. The staged variant keeps the row in
// shared memory between the passes (DS_CROSS_ENTROPY_STAGED=1, below).
#include "src/ops/cross_entropy_kernel.h"
#include "src/ops/cuda_convert.cuh"
#include "src/ops/softmax_sum.cuh"
#include "src/util/env.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <mutex>

namespace deepspeed::ops::detail {
namespace {

constexpr int kThreads = 512;

__device__ MaxSum block_reduce(MaxSum v) {
  __shared__ MaxSum warp_results[kThreads / 32];
  __shared__ MaxSum result;
  for (int offset = 16; offset > 0; offset >>= 1) {
    v = combine(v, MaxSum{__shfl_xor_sync(0xffffffffu, v.max, offset), __shfl_xor_sync(0xffffffffu, v.sum, offset)});
  }
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) warp_results[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < kThreads / 32 ? warp_results[lane] : MaxSum{-INFINITY, 0.0f};
    for (int offset = 16; offset > 0; offset >>= 1) {
      v = combine(v, MaxSum{__shfl_xor_sync(0xffffffffu, v.max, offset), __shfl_xor_sync(0xffffffffu, v.sum, offset)});
    }
    if (lane == 0) result = v;
  }
  __syncthreads();
  return result;
}

// grad_r = (softmax(x_r) - onehot(target)) * scale, rounded once to T. kVector: 16-byte packs of kPack
// elements (vocab % kPack == 0, aligned rows).
template <typename T, bool kVector>
__device__ __forceinline__ void write_grad_row(const T* __restrict__ x, T* __restrict__ g, std::int64_t vocab,
                                               float lse, std::int64_t target, float scale) {
  constexpr int kPack = 16 / sizeof(T);
  if constexpr (kVector) {
    const uint4* packs = reinterpret_cast<const uint4*>(x);
    uint4* out = reinterpret_cast<uint4*>(g);
    // As the forward's sum: e^(v − lse) from the special-function unit, and the target's pack found once, not
    // a 64-bit compare per value. A target out of [0, vocab) is in no pack.
    const std::int64_t target_pack = target >= 0 ? target / kPack : -1;
    const int target_lane = static_cast<int>(target - target_pack * kPack);
    for (std::int64_t i = threadIdx.x; i < vocab / kPack; i += kThreads) {
      const uint4 raw = packs[i];
      T values[kPack];
      memcpy(values, &raw, sizeof raw);
      float p[kPack];
#pragma unroll
      for (int k = 0; k < kPack; ++k) p[k] = fast_exp2((to_float(values[k]) - lse) * kLog2e);
      if (i == target_pack) {
#pragma unroll
        for (int k = 0; k < kPack; ++k) p[k] -= k == target_lane ? 1.0f : 0.0f;
      }
#pragma unroll
      for (int k = 0; k < kPack; ++k) values[k] = from_float<T>(p[k] * scale);
      uint4 packed;
      memcpy(&packed, values, sizeof packed);
      out[i] = packed;
    }
  } else {
    for (std::int64_t j = threadIdx.x; j < vocab; j += kThreads) {
      const float p = expf(to_float(x[j]) - lse);
      g[j] = from_float<T>((p - (j == target ? 1.0f : 0.0f)) * scale);
    }
  }
}

// kStaged (vector rows only): the first pass also keeps the row in shared memory (dynamic, a row's bytes) and the
// second reads it there. Four 512-thread blocks per SM hold ~53 MB of GPT-2 rows (50304 bf16 logits each) in
// flight, about the H200's L2, so much of the unstaged second pass goes back to HBM. Each thread touches the
// same packs in both passes with the same arithmetic either way: the results are equal bit for bit.
template <typename T, bool kVector, bool kStaged = false>
__global__ void __launch_bounds__(kThreads)
    cross_entropy_forward(const T* __restrict__ logits, const std::int64_t* __restrict__ targets,
                          float* __restrict__ loss_rows, float* __restrict__ lse_rows, T* __restrict__ grad,
                          std::int64_t vocab, float scale) {
  static_assert(kVector || !kStaged);
  constexpr int kPack = 16 / sizeof(T);
  extern __shared__ uint4 staged[];
  const std::int64_t row = blockIdx.x;
  const T* x = logits + row * vocab;

  MaxSum state{-INFINITY, 0.0f};
  if constexpr (kVector) {
    const uint4* packs = reinterpret_cast<const uint4*>(x);
    for (std::int64_t i = threadIdx.x; i < vocab / kPack; i += kThreads) {
      const uint4 raw = packs[i];
      if constexpr (kStaged) staged[i] = raw;
      T values[kPack];
      memcpy(values, &raw, sizeof raw);
      float v[kPack];
#pragma unroll
      for (int k = 0; k < kPack; ++k) v[k] = to_float(values[k]);
      accumulate_pack(state, v);
    }
  } else {
    for (std::int64_t i = threadIdx.x; i < vocab; i += kThreads) accumulate(state, to_float(x[i]));
  }
  const MaxSum total = block_reduce(state);
  const float lse = total.max + logf(total.sum);
  const std::int64_t target = targets[row];
  const bool valid = target >= 0 && target < vocab;
  if (threadIdx.x == 0) {
    loss_rows[row] = valid ? lse - to_float(x[target]) : NAN;
    lse_rows[row] = lse;
  }
  // The second pass reads the row again: staged, from shared memory; otherwise mostly from L2.
  write_grad_row<T, kVector>(kStaged ? reinterpret_cast<const T*>(staged) : x, grad + row * vocab, vocab, lse,
                             target, scale);
}

// Rows up to this many bytes are staged: two blocks' rows (plus their reserved and static shared memory) fit an
// H100/H200 SM's 228 KB. Larger rows, and devices that cannot give a block that much, take the unstaged kernel.
constexpr std::int64_t kStagedRowBytes = 112 * 1024;

bool staged_requested() {
  return util::env_is("DS_CROSS_ENTROPY_STAGED");
}

// Whether the staged forward for T can launch with `bytes` of dynamic shared memory on the current device. The
// opt-in above 48 KB is a setting of the kernel in one device's context, so it is made once per device (a
// process may drive several), for as much as the device grants up to kStagedRowBytes; rows longer than that
// keep the unstaged kernel.
template <typename T>
bool staged_fits(std::int64_t bytes) {
  if (bytes > kStagedRowBytes) return false;
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  static std::mutex mutex;
  static std::map<int, std::int64_t> granted;  // bytes the kernel may take on each device (0: none)
  const std::lock_guard<std::mutex> lock(mutex);
  auto it = granted.find(device);
  if (it == granted.end()) {
    int most = 0;
    std::int64_t bytes_granted = 0;
    if (cudaDeviceGetAttribute(&most, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) == cudaSuccess) {
      bytes_granted = std::min<std::int64_t>(most, kStagedRowBytes);
      if (cudaFuncSetAttribute(cross_entropy_forward<T, true, true>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(bytes_granted)) != cudaSuccess) {
        bytes_granted = 0;
      }
    }
    cudaGetLastError();
    it = granted.emplace(device, bytes_granted).first;
  }
  return bytes <= it->second;
}

// Every block reads the incoming gradient first: when it is exactly 1 (the plain `loss.backward()`) the
// forward's gradient is already the answer and no block touches memory. Otherwise the gradient is recomputed
// from the logits with the factor inside, so a loss scale reaches the values before the one rounding (scaling
// the stored 16-bit gradient afterwards would keep what fp16 had already flushed to zero).
template <typename T, bool kVector>
__global__ void __launch_bounds__(kThreads)
    cross_entropy_backward(const T* __restrict__ logits, const std::int64_t* __restrict__ targets,
                           const float* __restrict__ lse_rows, T* __restrict__ grad, std::int64_t rows,
                           std::int64_t vocab, float scale, const float* __restrict__ grad_output) {
  const float factor = *grad_output;
  if (factor == 1.0f) return;
  for (std::int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    write_grad_row<T, kVector>(logits + row * vocab, grad + row * vocab, vocab, lse_rows[row], targets[row],
                               scale * factor);
  }
}

template <typename T>
bool packs_fit(std::int64_t vocab, const void* logits, const void* grad) {
  constexpr int kPack = 16 / sizeof(T);
  return vocab % kPack == 0 && reinterpret_cast<std::uintptr_t>(logits) % 16 == 0 &&
         reinterpret_cast<std::uintptr_t>(grad) % 16 == 0;
}

template <typename T>
cudaError_t launch_forward(const void* logits, const std::int64_t* targets, float* loss_rows, float* lse_rows,
                           void* grad, std::int64_t rows, std::int64_t vocab, float scale, cudaStream_t stream) {
  const auto* in = static_cast<const T*>(logits);
  auto* out = static_cast<T*>(grad);
  if (rows == 0) return cudaSuccess;
  const std::int64_t row_bytes = vocab * static_cast<std::int64_t>(sizeof(T));
  if (packs_fit<T>(vocab, logits, grad) && staged_requested() && staged_fits<T>(row_bytes)) {
    cross_entropy_forward<T, true, true><<<rows, kThreads, static_cast<std::size_t>(row_bytes), stream>>>(
        in, targets, loss_rows, lse_rows, out, vocab, scale);
  } else if (packs_fit<T>(vocab, logits, grad)) {
    cross_entropy_forward<T, true><<<rows, kThreads, 0, stream>>>(in, targets, loss_rows, lse_rows, out, vocab, scale);
  } else {
    cross_entropy_forward<T, false><<<rows, kThreads, 0, stream>>>(in, targets, loss_rows, lse_rows, out, vocab, scale);
  }
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch_backward(const void* logits, const std::int64_t* targets, const float* lse_rows, void* grad,
                            std::int64_t rows, std::int64_t vocab, float scale, const float* grad_output,
                            cudaStream_t stream) {
  const auto* in = static_cast<const T*>(logits);
  auto* out = static_cast<T*>(grad);
  if (rows == 0) return cudaSuccess;
  // Rows are strided over a bounded grid, so the early exit for a factor of 1 costs one short wave.
  const unsigned blocks = static_cast<unsigned>(rows < 2048 ? rows : 2048);
  if (packs_fit<T>(vocab, logits, grad)) {
    cross_entropy_backward<T, true><<<blocks, kThreads, 0, stream>>>(in, targets, lse_rows, out, rows, vocab, scale,
                                                                     grad_output);
  } else {
    cross_entropy_backward<T, false><<<blocks, kThreads, 0, stream>>>(in, targets, lse_rows, out, rows, vocab, scale,
                                                                      grad_output);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_cross_entropy_forward(LogitType type, const void* logits, const std::int64_t* targets,
                                         float* loss_rows, float* lse_rows, void* grad, std::int64_t rows,
                                         std::int64_t vocab, float scale, cudaStream_t stream) {
  switch (type) {
    case LogitType::kFloat32:
      return launch_forward<float>(logits, targets, loss_rows, lse_rows, grad, rows, vocab, scale, stream);
    case LogitType::kFloat16:
      return launch_forward<__half>(logits, targets, loss_rows, lse_rows, grad, rows, vocab, scale, stream);
    case LogitType::kBFloat16:
      return launch_forward<__nv_bfloat16>(logits, targets, loss_rows, lse_rows, grad, rows, vocab, scale, stream);
  }
  return cudaErrorInvalidValue;
}

bool cross_entropy_forward_is_staged(LogitType type, const void* logits, std::int64_t vocab) {
  if (!staged_requested()) return false;
  switch (type) {
    case LogitType::kFloat32: return packs_fit<float>(vocab, logits, logits) && staged_fits<float>(vocab * 4);
    case LogitType::kFloat16: return packs_fit<__half>(vocab, logits, logits) && staged_fits<__half>(vocab * 2);
    case LogitType::kBFloat16:
      return packs_fit<__nv_bfloat16>(vocab, logits, logits) && staged_fits<__nv_bfloat16>(vocab * 2);
  }
  return false;
}

cudaError_t launch_cross_entropy_backward(LogitType type, const void* logits, const std::int64_t* targets,
                                          const float* lse_rows, void* grad, std::int64_t rows, std::int64_t vocab,
                                          float scale, const float* grad_output, cudaStream_t stream) {
  switch (type) {
    case LogitType::kFloat32:
      return launch_backward<float>(logits, targets, lse_rows, grad, rows, vocab, scale, grad_output, stream);
    case LogitType::kFloat16:
      return launch_backward<__half>(logits, targets, lse_rows, grad, rows, vocab, scale, grad_output, stream);
    case LogitType::kBFloat16:
      return launch_backward<__nv_bfloat16>(logits, targets, lse_rows, grad, rows, vocab, scale, grad_output, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace deepspeed::ops::detail
