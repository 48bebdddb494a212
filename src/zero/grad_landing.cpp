// BucketReducer under offload: a host chunk's gradient crosses to pinned memory on the landing thread, is
// accumulated there (or on the device, accumulate_on_device), and its ‖chunk‖² is taken on a thread of its own;
// the send buffers backward opens for the host are counted against the landing lead (landing_budget.h).
#include "deepspeed/zero/grad_reducer.h"

#include <optional>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <c10/core/StreamGuard.h>

#include "src/zero/grad_reducer_state.h"
#include "src/zero/landing_budget.h"
#include "src/zero/memory_trace.h"
#include "src/zero/serial_worker.h"

namespace deepspeed::zero {

std::int64_t BucketReducer::host_bytes() const {
  std::int64_t bytes = 0;
  for (const auto& s : state_) bytes += s->shard.host_bytes() + s->landing.host_bytes();
  return bytes;
}

bool BucketReducer::lands(std::size_t g, std::size_t b) const {
  return landing_budget_ && placement_.on_host(*groups_[g], b) && lands_now();
}

std::int64_t BucketReducer::landing_cap_bytes() const { return landing_budget_ ? landing_budget_->cap() : 0; }
std::int64_t BucketReducer::peak_landing_bytes() const { return landing_budget_ ? landing_budget_->peak() : 0; }
std::int64_t BucketReducer::landing_waits() const { return landing_budget_ ? landing_budget_->waits() : 0; }

void BucketReducer::reserve_landing(std::size_t g, std::size_t b, at::ScalarType dtype) {
  if (!lands(g, b)) return;
  // May wait for the landing thread, which never takes the lock this thread holds (shared_->mutex).
  const std::int64_t bytes = groups_[g]->plan.buckets[b].numel * static_cast<std::int64_t>(c10::elementSize(dtype));
  const std::int64_t waits = landing_budget_->waits();
  landing_budget_->open(bytes);
  state_[g]->budgeted[b] = bytes;
  if (landing_budget_->waits() != waits) memory_trace::event("waited", g, b, groups_[g]->param_flat.device());
}

void BucketReducer::land_on_host(std::size_t g, std::size_t b) {
  auto& s = *state_[g];
  at::NoGradGuard no_grad;
  // The window's first contribution is copied straight into the pinned shard (a DMA, no CPU work); later
  // micro-steps land beside it and are added in, in the shard's dtype, as the device path adds them.
  at::Tensor chunk = s.shard.chunk(b);
  const bool on_device = s.window.defined();
  const bool first = s.fresh[b] || keeps_full_buffer() || on_device;
  if (!first && !s.landing.defined()) {
    s.landing = placement_.shard_buffer(*groups_[g], StateKind::kTransfer,
                                        options_.communication_dtype.value_or(options_.accum_dtype));
  }
  at::Tensor target = first ? chunk : s.landing.chunk(b);
  // The chunk's ‖g‖² on the device, where what crosses is already the final gradient, bit for bit: the
  // boundary's only contribution, unscaled, in the host dtype. Otherwise the host sums it after landing.
  std::optional<double> squared;
  const bool norm_on_device = boundary_ && squared_norm_ && device_squared_sum_ && copy_stream_ && first &&
                              (on_device || averaging_.after == 1.0);
  {
    // Under NCCL the wait and the copy go to a side stream, so they queue behind the reduce-scatter only, not
    // behind the backward kernels launched since; the copy into pinned memory then blocks this thread alone.
    std::optional<c10::StreamGuard> on_copy_stream;
    if (copy_stream_) {
      on_copy_stream.emplace(*copy_stream_);
      s.launched_at[b]->block(*copy_stream_);
    }
    s.works[b].wait();
    at::Tensor source = s.output[b];
    if (on_device) {
      // The boundary's micro-step joins the window's sum on the device (as the device path folds it), and
      // the sum crosses once. The window is zeroed with the device shards at zero_grad().
      source = s.window.chunk(b);
      fold_into_shard(source, s.output[b]);
    }
    at::Tensor device_squared;
    if (norm_on_device && source.scalar_type() == target.scalar_type() && source.is_contiguous()) {
      device_squared = device_squared_sum_(source);
    }
    target.copy_(source);  // synchronous: the norm above, queued before it, is done too
    if (device_squared.defined()) squared = device_squared.item<double>();
  }
  if (!first) chunk.add_(target, averaging_.after);
  else if (averaging_.after != 1.0 && !on_device) chunk.mul_(averaging_.after);
  s.fresh[b] = 0;
  release_send_buffer(g, b);
  s.launched[b] = 0;
  if (!boundary_) return;
  if (!squared_norm_ || squared) {
    if (squared) s.host_squared[b] = *squared;
    if (chunk_final_) chunk_final_(g, b);
    return;
  }
  // On a thread of its own, so this one goes on to the next chunk's copy: run here, after each copy, they kept
  // the end of backward waiting 89-151 ms for the last landings (3.8B, one H200); on their own thread 38-43.
  if (!norm_worker_) norm_worker_ = std::make_unique<SerialWorker>();
  norm_worker_->submit([this, g, b, chunk] {
    state_[g]->host_squared[b] = squared_norm_({chunk});
    if (chunk_final_) chunk_final_(g, b);
  });
}

at::Tensor BucketReducer::shard_chunk(std::size_t g, std::size_t b) const { return state_.at(g)->shard.chunk(b); }

std::optional<double> BucketReducer::host_squared_norm(std::size_t g) const {
  if (!squared_norm_) return std::nullopt;
  const FlatGroup& group = *groups_.at(g);
  std::optional<double> sum;
  for (std::size_t b = 0; b < group.plan.buckets.size(); ++b) {
    if (placement_.on_host(group, b)) sum = sum.value_or(0.0) + state_[g]->host_squared[b];
  }
  return sum;
}

}  // namespace deepspeed::zero
