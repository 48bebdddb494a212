#pragma once
// Torch-free launcher of the bit-pattern hash (bits_hash_kernel.cu) with which the tuned GEMM choice tells
// algorithms that give the same bits from those that add in another order (lt_bits.h).

#include <cstdint>

#include <cuda_runtime_api.h>

namespace deepspeed::ops::detail {

/// Adds to out[0] a hash of the 16-bit words of a column-major matrix (`columns` columns of `column_words`
/// words each, the first at `base`, one `stride_words` after another), mixed with each word's position and
/// `salt`, and ORs into out[1] 1 where any word differs from the first. The hash is a sum of per-word mixes
/// (integer adds: the same whatever order the threads run in), so equal bits give equal hashes and, but for
/// a chance of about 2⁻⁶⁴, different bits different ones. out is zeroed by the caller; several matrices can
/// add into one pair (distinct salts). Asynchronous on `stream`; returns the launch error.
cudaError_t launch_bits_hash(const void* base, std::int64_t column_words, std::int64_t columns,
                             std::int64_t stride_words, std::uint64_t salt, unsigned long long* out,
                             cudaStream_t stream);

}  // namespace deepspeed::ops::detail
