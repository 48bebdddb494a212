#pragma once
// Internal, for the elementwise ops/ kernels with a per-column parameter (bias_gelu_kernel.cu's forward) and the
// CPU test of the arithmetic (tests/unit/kernel_math_test.cpp): the column of a grid-stride loop's packs.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace deepspeed::ops::detail {

/// Where a thread's packs start in their row, over a grid-stride loop through rows × columns values in packs of
/// `vec` (columns a multiple of vec, so no pack spans two rows): pack i starts at column (i·vec) mod columns, and
/// the thread's next pack is `stride` packs on, so the column moves by (stride·vec) mod columns. Carried with
/// one add, compare and subtract per pack, where a 64-bit modulo cost ~2 instructions an element. Unsigned: the
/// column plus the step stays below 2³², where columns may be up to 2³¹ − 1.
struct ColumnCursor {
  unsigned width;
  unsigned step;
  unsigned column;

  __host__ __device__ __forceinline__ ColumnCursor(std::int64_t first_pack, std::int64_t stride, int vec, int columns)
      : width(static_cast<unsigned>(columns)),
        step(static_cast<unsigned>(stride * vec % columns)),
        column(static_cast<unsigned>(first_pack * vec % columns)) {}

  __host__ __device__ __forceinline__ void advance() {
    column += step;
    if (column >= width) column -= width;
  }
};

}  // namespace deepspeed::ops::detail
