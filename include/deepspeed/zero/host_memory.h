#pragma once
/// \file
/// Host memory for ZeRO-Offload's transfer buffers. Page-locked (pinned) memory lets device↔host copies run as
/// asynchronous DMA; LibTorch's caching host allocator rounds every block up to a power of two (up to 2×
/// the memory asked for), so offload carves its pinned buffers out of a few blocks of exactly the size it
/// needs. Without a CUDA device, or with pinning off, the blocks are ordinary memory.
///
/// Not thread-safe: allocate from the training thread. Tensors keep their block alive.

#include <cstdint>
#include <memory>
#include <vector>

#include <ATen/core/Tensor.h>

namespace deepspeed::zero {

class HostArena {
 public:
  /// `pinned`: page-lock the blocks (takes effect only where CUDA has a device).
  explicit HostArena(bool pinned);
  ~HostArena();
  HostArena(const HostArena&) = delete;
  HostArena& operator=(const HostArena&) = delete;

  /// Sets aside one block of `bytes` for the tensors empty() hands out next (call once with the sum of
  /// what a layout needs). empty() beyond it allocates further blocks of exactly the size asked.
  void reserve(std::int64_t bytes);
  /// A new host tensor of `numel` elements, 64-byte aligned.
  at::Tensor empty(std::int64_t numel, at::ScalarType dtype);

  bool pinned() const { return pinned_; }
  /// Bytes of host memory the blocks hold.
  std::int64_t bytes() const { return bytes_; }
  std::size_t blocks() const { return blocks_.size(); }

 private:
  struct Block;
  std::shared_ptr<Block> allocate_block(std::int64_t bytes);

  bool pinned_;
  std::int64_t bytes_ = 0;
  std::vector<std::shared_ptr<Block>> blocks_;
  std::shared_ptr<Block> current_;
  std::int64_t used_ = 0;  // bytes of current_ handed out
};

/// Whether a CUDA device is usable in this process (pinning needs one).
bool cuda_available();

}  // namespace deepspeed::zero
