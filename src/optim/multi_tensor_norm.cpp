// The gradient norm's sum of squares in one pass over the gradient list (multi_tensor_norm_kernel.cu), beside
// clip.cpp's reference, LibTorch's _foreach_norm: one kernel over every chunk of every tensor and one that adds
// the blocks' sums in order, where _foreach_norm launches one per 320 chunks of 65,536 values and then four
// more (GPT-2 1.5B: ~78 launches and 1.33 ms a step on an H200 for ~0.7 ms of bytes). Measured on an H100
// (2026-12-05, bench/ops_bench): 1.02 ms against _foreach_norm's 1.87 at 1.5B's gradient list, 0.10 against 0.40
// at 124M's, so it is the default; DS_REFERENCE_GRAD_NORM=1 takes the reference.
#include "src/optim/multi_tensor_norm.h"

#include <cstdint>
#include <string>

#include <ATen/ATen.h>

#include "deepspeed/util/error.h"
#include "src/util/env.h"

#ifdef DS_WITH_CUDA_NORM
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "src/optim/device_table.h"
#include "src/optim/multi_tensor_norm_kernel.h"
#include "src/util/chunk_table.h"
#include "src/util/value_type_of.h"
#endif

namespace deepspeed::optim::detail {

bool multi_tensor_norm_enabled() { return !util::env_is("DS_REFERENCE_GRAD_NORM"); }

#ifdef DS_WITH_CUDA_NORM

std::optional<at::Tensor> multi_tensor_squared_sum(const std::vector<at::Tensor>& tensors) {
  if (tensors.empty() || !tensors.front().is_cuda()) return std::nullopt;
  const c10::Device device = tensors.front().device();
  std::vector<NormTensorArgs> table;
  std::int64_t chunks = 0;
  for (const auto& t : tensors) {
    const auto type = util::value_type_of(t.scalar_type());
    if (t.device() != device || !t.is_contiguous() || !type) return std::nullopt;
    if (t.numel() == 0) continue;
    const bool vector = reinterpret_cast<std::uintptr_t>(t.data_ptr()) % 16 == 0;
    table.push_back(NormTensorArgs{t.data_ptr(), t.numel(), chunks, *type, vector ? 1 : 0});
    chunks += util::chunks_of(t.numel(), kNormChunk);
  }
  const c10::cuda::CUDAGuard guard(device);
  const auto options = at::TensorOptions().dtype(at::kDouble).device(device);
  const std::int64_t blocks = multi_tensor_norm_blocks(chunks);
  at::Tensor partial = at::empty({blocks}, options);
  at::Tensor out = at::empty({}, options);
  const at::Tensor on_device = table.empty() ? at::Tensor() : table_on_device(table, device);
  const cudaError_t err = launch_multi_tensor_squared_sum(
      table.empty() ? nullptr : static_cast<const NormTensorArgs*>(on_device.data_ptr()),
      static_cast<int>(table.size()), chunks, partial.data_ptr<double>(), blocks, out.data_ptr<double>(),
      c10::cuda::getCurrentCUDAStream().stream());
  if (err != cudaSuccess) throw JobError(std::string("gradient norm kernel launch failed: ") + cudaGetErrorString(err));
  return out;
}

#else

std::optional<at::Tensor> multi_tensor_squared_sum(const std::vector<at::Tensor>&) { return std::nullopt; }

#endif

}  // namespace deepspeed::optim::detail
