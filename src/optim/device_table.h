#pragma once
// Internal, for the multi-tensor launchers (the device Adam, the gradient norm): a launch's table of per-tensor
// entries, copied to the device.
#include <cstdint>
#include <cstring>
#include <vector>

#include <ATen/ATen.h>

namespace deepspeed::optim::detail {

/// `entries` as bytes on `device`, copied through pinned memory on the current stream, which the caller's launch
/// follows; the caching host allocator keeps the pinned block until that copy has run.
template <typename Entry>
at::Tensor table_on_device(const std::vector<Entry>& entries, c10::Device device) {
  const auto bytes = static_cast<std::int64_t>(entries.size() * sizeof(Entry));
  at::Tensor host = at::empty({bytes}, at::TensorOptions().dtype(at::kByte).pinned_memory(true));
  std::memcpy(host.data_ptr(), entries.data(), static_cast<std::size_t>(bytes));
  return host.to(device, /*non_blocking=*/true);
}

}  // namespace deepspeed::optim::detail
