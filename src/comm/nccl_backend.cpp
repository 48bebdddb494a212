#include <c10/cuda/CUDAFunctions.h>

#include "deepspeed/util/error.h"
#include "src/comm/backends.h"

#ifdef DS_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace deepspeed::comm {

int cuda_device_count() { return static_cast<int>(c10::cuda::device_count()); }

void set_cuda_device(int index) { c10::cuda::set_device(static_cast<c10::DeviceIndex>(index)); }

c10::intrusive_ptr<c10d::Backend> make_nccl_backend(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                                    std::chrono::milliseconds timeout) {
#ifdef DS_WITH_NCCL
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, options);
#else
  throw UsageError("this build of deepspeed.cpp has no NCCL (nccl.h was not found at configure time); "
                   "set DS_ACCELERATOR=cpu to train on CPU ranks with Gloo");
#endif
}

}  // namespace deepspeed::comm
