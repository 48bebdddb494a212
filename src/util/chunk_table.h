#pragma once
// Internal, for the multi-tensor kernels (the device Adam, the gradient norm) and their CPU tests: a launch
// covers a list of tensors as one run of fixed-size chunks; each tensor's entry in the launch's table holds the
// number of the first chunk it owns, so a block finds its tensor by a binary search. Plain C++ on the host,
// __host__ __device__ under nvcc.
#include <cstdint>

#if defined(__CUDACC__)
#define DS_HOST_DEVICE __host__ __device__
#else
#define DS_HOST_DEVICE
#endif

namespace deepspeed::util {

/// Chunks of `chunk` elements that cover n elements (the last one partial).
DS_HOST_DEVICE inline std::int64_t chunks_of(std::int64_t n, std::int64_t chunk) { return (n + chunk - 1) / chunk; }

/// The entry of `table` (count ≥ 1, first_chunk non-decreasing from 0) that owns chunk `chunk`: the last whose
/// first_chunk ≤ chunk, so an entry with no chunks (an empty tensor, whose first_chunk is its successor's) is
/// never chosen over the successor.
template <typename Entry>
DS_HOST_DEVICE inline int chunk_owner(const Entry* table, int count, std::int64_t chunk) {
  int lo = 0, hi = count - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (table[mid].first_chunk <= chunk) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

}  // namespace deepspeed::util
