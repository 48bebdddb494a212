#include "deepspeed/zero/host_memory.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>

#include <ATen/ATen.h>

#ifdef DS_WITH_CUDA_RUNTIME
#include <cuda_runtime_api.h>
#endif

#include "deepspeed/util/error.h"
#include "deepspeed/util/strings.h"

namespace deepspeed::zero {

namespace {
std::atomic<std::int64_t> g_pinned_bytes{0};
}  // namespace

std::int64_t pinned_host_bytes() { return g_pinned_bytes.load(std::memory_order_relaxed); }

bool cuda_available() {
#ifdef DS_WITH_CUDA_RUNTIME
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
#else
  return false;
#endif
}

at::Tensor host_empty(std::int64_t numel, at::ScalarType dtype, bool pinned) {
  constexpr std::size_t kAlign = 64;
  const std::size_t bytes = std::max<std::size_t>(
      (static_cast<std::size_t>(numel) * c10::elementSize(dtype) + kAlign - 1) / kAlign * kAlign, kAlign);
  const auto options = at::TensorOptions().dtype(dtype).device(at::kCPU);
#ifdef DS_WITH_CUDA_RUNTIME
  if (pinned && cuda_available()) {
    void* data = nullptr;
    const cudaError_t status = cudaHostAlloc(&data, bytes, cudaHostAllocDefault);
    if (status != cudaSuccess) {
      cudaGetLastError();  // not sticky: clear it
      throw JobError(util::cat("offload: cannot pin ", bytes, " bytes of host memory (", cudaGetErrorString(status),
                               "); set offload_optimizer.pin_memory to false, or free host memory"));
    }
    const auto counted = static_cast<std::int64_t>(bytes);
    g_pinned_bytes += counted;
    return at::from_blob(
        data, {numel},
        [counted](void* p) {
          cudaFreeHost(p);
          g_pinned_bytes -= counted;
        },
        options);
  }
#endif
  void* data = std::aligned_alloc(kAlign, bytes);
  if (!data) throw JobError(util::cat("offload: cannot allocate ", bytes, " bytes of host memory"));
  return at::from_blob(data, {numel}, [](void* p) { std::free(p); }, options);
}

}  // namespace deepspeed::zero
