#include "deepspeed/zero/placement.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

namespace deepspeed::zero {

ShardBuffer ShardBuffer::whole(const FlatGroup& group, at::Tensor tensor) {
  return ShardBuffer(&group, {Piece{0, group.plan.buckets.size(), 0, std::move(tensor), false}});
}

std::int64_t ShardBuffer::numel() const {
  std::int64_t n = 0;
  for (const auto& p : pieces_) n += p.tensor.numel();
  return n;
}

at::Tensor ShardBuffer::chunk(std::size_t bucket) const {
  for (const auto& p : pieces_) {
    if (bucket >= p.first_bucket && bucket < p.end_bucket) {
      const auto& b = group_->plan.buckets[bucket];
      return p.tensor.narrow(0, b.shard_offset - p.begin, b.chunk);
    }
  }
  return {};
}

at::Tensor ShardBuffer::to_cpu() const {
  if (pieces_.size() == 1) return pieces_[0].tensor.detach().cpu().clone();
  std::vector<at::Tensor> parts;
  for (const auto& p : pieces_) parts.push_back(p.tensor.detach().cpu());
  return at::cat(parts);
}

void ShardBuffer::copy_from(const at::Tensor& whole) const {
  at::NoGradGuard no_grad;
  for (const auto& p : pieces_) p.tensor.copy_(whole.narrow(0, p.begin, p.tensor.numel()));
}

std::int64_t ShardBuffer::host_bytes() const {
  std::int64_t bytes = 0;
  for (const auto& p : pieces_) {
    if (p.host) bytes += p.tensor.numel() * static_cast<std::int64_t>(p.tensor.element_size());
  }
  return bytes;
}

void ShardBuffer::zero_() const {
  for (const auto& p : pieces_) p.tensor.zero_();
}

Placement Placement::on_device(c10::Device device) { return Placement(device, 0.0, false); }

Placement Placement::offloaded(c10::Device device, double ratio, bool pinned) {
  return Placement(device, ratio, pinned && device.is_cuda());
}

std::size_t offloaded_buckets(const BucketPlan& plan, double ratio) {
  const double target = ratio * static_cast<double>(plan.shard_numel);
  std::size_t k = 0;
  for (const auto& b : plan.buckets) {
    if (static_cast<double>(b.shard_offset) + 0.5 * static_cast<double>(b.chunk) >= target) break;
    ++k;
  }
  return k;
}

bool Placement::on_host(const FlatGroup& group, std::size_t bucket) const {
  return bucket < host_buckets(group);
}

c10::Device Placement::device_of(const FlatGroup& group, std::size_t bucket) const {
  return on_host(group, bucket) ? c10::Device(c10::kCPU) : device_;
}

at::Tensor Placement::host_tensor(StateKind kind, std::int64_t numel, at::ScalarType dtype) const {
  // Master weights (and the optimizer state beside them) never cross the bus: ordinary memory.
  return host_empty(numel, dtype, pinned_ && kind != StateKind::kMasterWeights);
}

ShardBuffer Placement::shard_buffer(const FlatGroup& group, StateKind kind, at::ScalarType dtype,
                                    const at::Tensor& host_storage) const {
  const std::size_t nb = group.plan.buckets.size();
  const std::size_t k = host_buckets(group);
  const bool host_only = kind == StateKind::kParamCopies || kind == StateKind::kTransfer;
  auto span = [&](std::size_t first, std::size_t end) {
    std::int64_t n = 0;
    for (std::size_t b = first; b < end; ++b) n += group.plan.buckets[b].chunk;
    return n;
  };
  std::vector<ShardBuffer::Piece> pieces;
  if (k > 0 && host_storage.defined()) {
    pieces.push_back({0, k, 0, host_storage.narrow(0, 0, span(0, k)), /*host=*/true});
  } else if (k > 0) {
    at::Tensor t = host_tensor(kind, span(0, k), dtype);
    t.zero_();
    pieces.push_back({0, k, 0, t, /*host=*/true});
  }
  if (k < nb && !host_only) {
    const std::int64_t begin = group.plan.buckets[k].shard_offset;
    pieces.push_back({k, nb, begin, at::zeros({span(k, nb)}, at::TensorOptions().dtype(dtype).device(device_)), false});
  }
  return ShardBuffer(&group, std::move(pieces));
}

}  // namespace deepspeed::zero
