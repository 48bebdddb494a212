#pragma once
/// \file
/// Host memory for ZeRO-Offload's transfer buffers. Page-locked (pinned) memory lets device↔host copies run as
/// asynchronous DMA. LibTorch's caching host allocator rounds every block up to a power of two (up to 2× the
/// memory asked for, never returned while the process lives), so offload allocates each of its few large
/// buffers (per parameter group: the gradient shard, the 16-bit copies, the landing area) as one block of
/// exactly its size, released with the tensor.

#include <cstdint>

#include <ATen/core/Tensor.h>

namespace deepspeed::zero {

/// A new CPU tensor of `numel` elements, 64-byte aligned; page-locked when `pinned` and a CUDA device exists
/// (otherwise ordinary memory). Throws JobError naming the size when the host cannot provide it.
at::Tensor host_empty(std::int64_t numel, at::ScalarType dtype, bool pinned);

/// Bytes of page-locked memory host_empty() holds now, in this process (the memory_breakdown figure).
std::int64_t pinned_host_bytes();

/// Whether a CUDA device is usable in this process (pinning needs one).
bool cuda_available();

}  // namespace deepspeed::zero
