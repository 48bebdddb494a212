#pragma once
// Torch-free launcher of the gradient norm over a list of device tensors in one pass (multi_tensor_norm_kernel.cu),
// so nvcc never parses ATen.
#include <cstdint>

#include <cuda_runtime_api.h>

#include "src/util/value_type.h"

namespace deepspeed::optim::detail {

using NormValueType = ::deepspeed::util::ValueType;

/// Elements a chunk covers: a tensor of n elements owns ceil(n / kNormChunk) chunks of the launch.
constexpr std::int64_t kNormChunk = 16384;

/// One tensor of a launch. `first_chunk`: the chunks of the tensors before it (the table is searched by it).
/// `vector`: 1 when `data` is 16-byte aligned (whole 16-byte loads; the tensor's last partial load element-wise).
struct NormTensorArgs {
  const void* data;
  std::int64_t numel;
  std::int64_t first_chunk;
  NormValueType type;
  std::int32_t vector;
};

/// Blocks launch_multi_tensor_squared_sum launches for `total_chunks` chunks on the current device (one wave,
/// at most one per chunk): the doubles `partial` must hold.
std::int64_t multi_tensor_norm_blocks(std::int64_t total_chunks);

/// *out (fp64, device) = Σ x² over every element of the `count` tensors of `table` (a device array; total_chunks
/// = the last entry's first_chunk + its chunks), in a grid of `blocks` = multi_tensor_norm_blocks(total_chunks).
/// Each thread squares and sums its share of a chunk (at most 64 values) in fp32 and adds that to an fp64 sum;
/// the blocks' sums land in `partial` (`blocks` doubles) and are added in a fixed order, so the result is the
/// same run to run on one device. ∞ and NaN propagate. Asynchronous on `stream`; returns the launch error.
cudaError_t launch_multi_tensor_squared_sum(const NormTensorArgs* table, int count, std::int64_t total_chunks,
                                            double* partial, std::int64_t blocks, double* out, cudaStream_t stream);

}  // namespace deepspeed::optim::detail
