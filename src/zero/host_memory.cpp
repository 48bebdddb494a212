#include "deepspeed/zero/host_memory.h"

#include <algorithm>
#include <cstdlib>

#include <ATen/ATen.h>

#ifdef DS_WITH_CUDA_RUNTIME
#include <cuda_runtime_api.h>
#endif

#include "deepspeed/util/error.h"
#include "deepspeed/util/strings.h"

namespace deepspeed::zero {

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
  const std::size_t bytes = (static_cast<std::size_t>(numel) * c10::elementSize(dtype) + kAlign - 1) / kAlign * kAlign;
  void* data = nullptr;
  void (*release)(void*) = [](void* p) { std::free(p); };
#ifdef DS_WITH_CUDA_RUNTIME
  if (pinned && cuda_available()) {
    const cudaError_t status = cudaHostAlloc(&data, std::max<std::size_t>(bytes, kAlign), cudaHostAllocDefault);
    if (status != cudaSuccess) {
      cudaGetLastError();  // not sticky: clear it
      throw JobError(util::cat("offload: cannot pin ", bytes, " bytes of host memory (", cudaGetErrorString(status),
                               "); set offload_optimizer.pin_memory to false, or free host memory"));
    }
    release = [](void* p) { cudaFreeHost(p); };
  }
#endif
  if (!data) {
    data = std::aligned_alloc(kAlign, std::max<std::size_t>(bytes, kAlign));
    if (!data) throw JobError(util::cat("offload: cannot allocate ", bytes, " bytes of host memory"));
  }
  return at::from_blob(data, {numel}, release, at::TensorOptions().dtype(dtype).device(at::kCPU));
}

}  // namespace deepspeed::zero
