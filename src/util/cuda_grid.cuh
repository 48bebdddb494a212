#pragma once
// Internal, for deepspeed.cpp's CUDA launchers: how many blocks the current device holds at once, so a grid can
// be sized to fill it once (and a kernel that writes one partial result per block writes no more than that).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>

namespace deepspeed::cuda {

/// Streaming multiprocessors of the current device (1 if it cannot be read): grids sized to fill it once.
inline int device_sms() {
  int device = 0, sms = 1;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) {
    cudaGetLastError();
    sms = 1;
  }
  return std::max(sms, 1);
}

/// Blocks of `threads` threads of `kernel` the current device holds at once (SMs × blocks per SM, at least one
/// per SM; `fallback` per SM if the occupancy query fails): a grid of one wave.
template <typename Kernel>
std::int64_t resident_blocks_of(Kernel kernel, int threads, int fallback) {
  int per_sm = 0;
  if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, 0) != cudaSuccess) {
    cudaGetLastError();
    per_sm = fallback;
  }
  return static_cast<std::int64_t>(device_sms()) * std::max(per_sm, 1);
}

}  // namespace deepspeed::cuda
