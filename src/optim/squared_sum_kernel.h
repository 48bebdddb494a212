#pragma once
// Torch-free launcher of the device Σx² that sums in the host's order (squared_sum_kernel.cu), so nvcc never
// parses ATen.
#include <cstdint>

#include <cuda_runtime_api.h>

#include "src/util/value_type.h"

namespace deepspeed::optim::detail {

using SquaredSumInput = ::deepspeed::util::ValueType;

/// Elements a block of partial sums covers, and the length of a run of fp32 lanes inside it: the same numbers
/// as clip.cpp's host sum (the two must change together; the GPU test compares them bitwise).
constexpr std::int64_t kSquaredSumBlock = std::int64_t{1} << 16;
constexpr std::int64_t kSquaredSumRun = 1024;

/// *out (fp64, device) = Σ data[i]² over n elements, in clip.cpp's order. `partial`: device scratch of
/// ceil(n / kSquaredSumBlock) doubles. Asynchronous on `stream`; returns the launch error.
cudaError_t launch_host_order_squared_sum(SquaredSumInput type, const void* data, std::int64_t n, double* partial,
                                          double* out, cudaStream_t stream);

}  // namespace deepspeed::optim::detail
