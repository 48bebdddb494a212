// A hash of a matrix's bits, for comparing GEMM outputs without a second copy of them (a GPT-2 LM head's output
// is most of a gigabyte). Runs only while the tuned GEMM choice checks its candidates, once per problem.
#include "src/ops/bits_hash_kernel.h"

#include <algorithm>
#include <cstdint>

namespace deepspeed::ops::detail {
namespace {

constexpr int kThreads = 256;

// splitmix64's finaliser: every input bit moves about half the output bits.
__device__ __forceinline__ std::uint64_t mix(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

__global__ void __launch_bounds__(kThreads)
    bits_hash(const std::uint16_t* __restrict__ base, std::int64_t column_words, std::int64_t columns,
              std::int64_t stride_words, std::uint64_t salt, unsigned long long* out) {
  const std::uint16_t first = base[0];
  unsigned long long sum = 0;
  unsigned long long varied = 0;
  for (std::int64_t column = blockIdx.y; column < columns; column += gridDim.y) {
    const std::uint16_t* col = base + column * stride_words;
    for (std::int64_t row = blockIdx.x * static_cast<std::int64_t>(kThreads) + threadIdx.x; row < column_words;
         row += static_cast<std::int64_t>(gridDim.x) * kThreads) {
      const std::uint16_t word = col[row];
      const std::uint64_t position = static_cast<std::uint64_t>(column * column_words + row);
      sum += mix((position << 16 | word) ^ salt);
      varied |= word != first;
    }
  }
  for (int offset = 16; offset > 0; offset /= 2) {
    sum += __shfl_down_sync(0xffffffffu, sum, offset);
    varied |= __shfl_down_sync(0xffffffffu, varied, offset);
  }
  if (threadIdx.x % 32 == 0) {
    atomicAdd(&out[0], sum);
    if (varied) atomicOr(&out[1], 1ULL);
  }
}

}  // namespace

cudaError_t launch_bits_hash(const void* base, std::int64_t column_words, std::int64_t columns,
                             std::int64_t stride_words, std::uint64_t salt, unsigned long long* out,
                             cudaStream_t stream) {
  if (column_words <= 0 || columns <= 0) return cudaSuccess;
  const auto x = static_cast<unsigned>(std::min<std::int64_t>((column_words + kThreads - 1) / kThreads, 1024));
  const auto y = static_cast<unsigned>(std::min<std::int64_t>(columns, 65535));
  bits_hash<<<dim3(x, y), kThreads, 0, stream>>>(static_cast<const std::uint16_t*>(base), column_words, columns,
                                                 stride_words, salt, out);
  return cudaGetLastError();
}

}  // namespace deepspeed::ops::detail
