#include "src/zero/storage.h"

#include <ATen/native/Resize.h>
#include <ATen/native/cuda/Resize.h>
#include <c10/core/DeviceGuard.h>

namespace deepspeed::zero {

void resize_storage(const at::Tensor& tensor, std::int64_t nbytes) {
  auto* storage = tensor.storage().unsafeGetStorageImpl();
  if (static_cast<std::int64_t>(storage->nbytes()) == nbytes) return;
  c10::DeviceGuard guard(tensor.device());
  if (tensor.is_cuda()) at::native::resize_bytes_cuda(storage, static_cast<std::size_t>(nbytes));
  else at::native::resize_bytes_cpu(storage, static_cast<std::size_t>(nbytes));
}

}  // namespace deepspeed::zero
