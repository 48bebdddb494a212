#include "deepspeed/zero/host_memory.h"

#include <cstdlib>
#include <new>

#include <ATen/ATen.h>

#ifdef DS_WITH_CUDA_RUNTIME
#include <cuda_runtime_api.h>
#endif

#include "deepspeed/util/error.h"
#include "deepspeed/util/strings.h"

namespace deepspeed::zero {

namespace {

constexpr std::int64_t kAlign = 64;

std::int64_t round_up_bytes(std::int64_t x) { return (x + kAlign - 1) / kAlign * kAlign; }

}  // namespace

bool cuda_available() {
#ifdef DS_WITH_CUDA_RUNTIME
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
#else
  return false;
#endif
}

struct HostArena::Block {
  void* data = nullptr;
  std::int64_t bytes = 0;
  bool pinned = false;
  ~Block() {
#ifdef DS_WITH_CUDA_RUNTIME
    if (pinned) {
      cudaFreeHost(data);
      return;
    }
#endif
    std::free(data);
  }
};

HostArena::HostArena(bool pinned) : pinned_(pinned && cuda_available()) {}

HostArena::~HostArena() = default;

std::shared_ptr<HostArena::Block> HostArena::allocate_block(std::int64_t bytes) {
  auto block = std::make_shared<Block>();
  block->bytes = round_up_bytes(std::max<std::int64_t>(bytes, kAlign));
#ifdef DS_WITH_CUDA_RUNTIME
  if (pinned_) {
    const cudaError_t status = cudaHostAlloc(&block->data, static_cast<std::size_t>(block->bytes), cudaHostAllocDefault);
    if (status != cudaSuccess) {
      cudaGetLastError();  // clear the sticky-free error state
      throw JobError(util::cat("offload: cannot pin ", block->bytes, " bytes of host memory (", cudaGetErrorString(status),
                               "); set offload_optimizer.pin_memory / offload_param.pin_memory to false, or free host "
                               "memory"));
    }
    block->pinned = true;
  }
#endif
  if (!block->data) {
    block->data = std::aligned_alloc(kAlign, static_cast<std::size_t>(block->bytes));
    if (!block->data) {
      throw JobError(util::cat("offload: cannot allocate ", block->bytes, " bytes of host memory"));
    }
  }
  bytes_ += block->bytes;
  blocks_.push_back(block);
  return block;
}

void HostArena::reserve(std::int64_t bytes) {
  if (bytes <= 0) return;
  current_ = allocate_block(bytes);
  used_ = 0;
}

at::Tensor HostArena::empty(std::int64_t numel, at::ScalarType dtype) {
  const std::int64_t bytes = round_up_bytes(numel * static_cast<std::int64_t>(c10::elementSize(dtype)));
  if (!current_ || used_ + bytes > current_->bytes) {
    current_ = allocate_block(bytes);
    used_ = 0;
  }
  std::shared_ptr<Block> block = current_;
  void* data = static_cast<char*>(block->data) + used_;
  used_ += bytes;
  // The deleter keeps the block alive for as long as any tensor cut from it.
  return at::from_blob(data, {numel}, [block](void*) {}, at::TensorOptions().dtype(dtype).device(at::kCPU));
}

}  // namespace deepspeed::zero
