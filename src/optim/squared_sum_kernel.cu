// Σx² on the device in exactly the host's order (clip.cpp): within each block of 65536 elements, each run of
// 1024 sums its 8-element groups into 8 fp32 lanes (lane k takes elements k, k+8, ...; the run's leftover
// elements go into lane 0 after its groups), the lanes are added to the block's fp64 sum run by run, lane by
// lane, and the blocks' sums are added in order. Products and sums are rounded one at a time (no FMA), as the
// host's SSE code does, so the result is bit-identical to the host's for the same elements. ZeRO-Offload takes
// a host chunk's ‖g‖² this way from the device copy it lands from, leaving the host's memory bandwidth to the
// CPU Adam pass.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "src/optim/squared_sum_kernel.h"
#include "src/util/cuda_values.cuh"

namespace deepspeed::optim::detail {
namespace {

constexpr int kRunsPerBlock = static_cast<int>(kSquaredSumBlock / kSquaredSumRun);  // 64
constexpr int kThreads = kRunsPerBlock * 8;                                          // a thread per lane

using ::deepspeed::cuda::to_float;

template <typename T>
__global__ void block_sums(const T* __restrict__ data, std::int64_t n, double* __restrict__ partial) {
  __shared__ float lanes[kThreads];
  const std::int64_t base = static_cast<std::int64_t>(blockIdx.x) * kSquaredSumBlock;
  const std::int64_t hi = min(n, base + kSquaredSumBlock);
  const int run_index = threadIdx.x / 8, lane = threadIdx.x % 8;
  const std::int64_t run = base + static_cast<std::int64_t>(run_index) * kSquaredSumRun;
  float acc = 0.0f;
  if (run < hi) {
    const std::int64_t end = min(hi, run + kSquaredSumRun);
    const std::int64_t groups_end = run + (end - run) / 8 * 8;
    for (std::int64_t i = run + lane; i < groups_end; i += 8) {
      const float v = to_float(data[i]);
      acc = __fadd_rn(acc, __fmul_rn(v, v));
    }
    if (lane == 0) {
      for (std::int64_t i = groups_end; i < end; ++i) {
        const float v = to_float(data[i]);
        acc = __fadd_rn(acc, __fmul_rn(v, v));
      }
    }
  }
  lanes[threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.x != 0) return;
  double sum = 0.0;
  for (int r = 0; r < kRunsPerBlock && base + static_cast<std::int64_t>(r) * kSquaredSumRun < hi; ++r) {
    for (int k = 0; k < 8; ++k) sum = __dadd_rn(sum, static_cast<double>(lanes[r * 8 + k]));
  }
  partial[blockIdx.x] = sum;
}

__global__ void total_in_order(const double* __restrict__ partial, std::int64_t blocks, double* out) {
  double total = 0.0;
  for (std::int64_t b = 0; b < blocks; ++b) total = __dadd_rn(total, partial[b]);
  *out = total;
}

template <typename T>
cudaError_t launch(const void* data, std::int64_t n, double* partial, double* out, cudaStream_t stream) {
  const std::int64_t blocks = (n + kSquaredSumBlock - 1) / kSquaredSumBlock;
  if (blocks > 0) {
    block_sums<T><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(static_cast<const T*>(data), n, partial);
  }
  total_in_order<<<1, 1, 0, stream>>>(partial, blocks, out);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_host_order_squared_sum(SquaredSumInput type, const void* data, std::int64_t n, double* partial,
                                          double* out, cudaStream_t stream) {
  switch (type) {
    case SquaredSumInput::kBFloat16: return launch<__nv_bfloat16>(data, n, partial, out, stream);
    case SquaredSumInput::kFloat16: return launch<__half>(data, n, partial, out, stream);
    default: return launch<float>(data, n, partial, out, stream);
  }
}

}  // namespace deepspeed::optim::detail
