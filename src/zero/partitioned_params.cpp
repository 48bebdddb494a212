#include "deepspeed/zero/partitioned_params.h"

#include <algorithm>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "deepspeed/zero/host_memory.h"
#include "deepspeed/zero/init.h"
#include "src/zero/memory_trace.h"
#include "src/zero/storage.h"

namespace deepspeed::zero {

struct PartitionedParams::UnitState {
  std::vector<FlatGroup*> groups;
  std::int64_t numel = 0;
  bool persistent = false;
  bool gathered = false;
  bool in_flight = false;
  std::vector<comm::Work> works;
  std::vector<at::Tensor> staged;  // offload_param: the chunks copied to the device for the gathers in flight
  std::size_t groups_done = 0;  // this backward
};

PartitionedParams::PartitionedParams(const std::vector<std::vector<std::vector<at::Tensor>>>& units,
                                     std::shared_ptr<comm::Communicator> comm, PartitionOptions options)
    : comm_(std::move(comm)), options_(options) {
  at::NoGradGuard no_grad;
  const FlatOptions flat{options_.bucket_numel, kAlignment, comm_->world_size()};
  for (std::size_t u = 0; u < units.size(); ++u) {
    auto state = std::make_unique<UnitState>();
    // A unit zero::Init partitioned at construction comes back whole here, one unit at a time.
    for (const auto& group_params : units[u]) {
      if (!group_params.empty()) {
        materialize_presharded(group_params, comm_->device(), group_params[0].scalar_type());
      }
    }
    for (auto& group : build_flat_groups(units[u], flat)) {
      group->unit = u;
      group->param_shard = options_.offload
                               ? host_empty(group->plan.shard_numel, group->param_flat.scalar_type(),
                                            options_.pin_memory && comm_->device().is_cuda())
                               : at::empty({group->plan.shard_numel}, group->param_flat.options());
      group->copy_own_chunks(group->param_flat, group->param_shard, comm_->rank());
      state->numel += group->plan.total_numel;
      state->groups.push_back(group.get());
      groups_.push_back(std::move(group));
    }
    state->persistent = u == 0 || state->numel <= options_.persistence_threshold;
    state->gathered = true;  // build_flat_groups left the full values in place
    live_numel_ += state->numel;
    units_.push_back(std::move(state));
    // Released before the next unit is laid out: with zero::Init no rank ever holds two units whole.
    if (!units_[u]->persistent) release_locked(u);
  }
}

PartitionedParams::~PartitionedParams() = default;

std::vector<FlatGroup*> PartitionedParams::groups() {
  // Backward finishes later units first; the root (embeddings, head) is used at both ends: put it last.
  std::vector<FlatGroup*> out;
  for (std::size_t u = units_.size(); u-- > 1;) out.insert(out.end(), units_[u]->groups.begin(), units_[u]->groups.end());
  if (!units_.empty()) out.insert(out.end(), units_[0]->groups.begin(), units_[0]->groups.end());
  return out;
}

std::optional<std::size_t> PartitionedParams::unit_of(const at::Tensor& param) const {
  for (const auto& g : groups_) {
    for (const auto& p : g->params) {
      if (p.unsafeGetTensorImpl() == param.unsafeGetTensorImpl()) return g->unit;
    }
  }
  return std::nullopt;
}

namespace {
c10::Device device_of(const std::vector<FlatGroup*>& groups) {
  return groups.empty() ? c10::Device(c10::kCPU) : groups.front()->param_flat.device();
}
}  // namespace

void PartitionedParams::start_gather_locked(std::size_t u) {
  auto& unit = *units_[u];
  if (unit.gathered || unit.in_flight) return;
  for (auto* g : unit.groups) {
    resize_storage(g->param_flat, g->plan.total_numel * static_cast<std::int64_t>(g->param_flat.element_size()));
    for (std::size_t b = 0; b < g->plan.buckets.size(); ++b) {
      at::Tensor output = g->bucket(g->param_flat, b);
      at::Tensor input = g->chunk_in_shard(g->param_shard, b);
      if (input.device() != output.device()) {
        // offload_param: the chunk goes up first (a DMA from pinned memory, queued on the current stream,
        // which the collective waits for); it is kept until the gather is waited for.
        unit.staged.push_back(input.to(output.device(), /*non_blocking=*/true));
        input = unit.staged.back();
      }
      comm::CallerScope caller("PartitionedParams.gather");
      unit.works.push_back(comm_->all_gather(output, input));
    }
  }
  unit.in_flight = true;
  live_numel_ += unit.numel;
  ++gathers_;
}

void PartitionedParams::finish_gather_locked(std::size_t u) {
  auto& unit = *units_[u];
  if (unit.gathered) return;
  start_gather_locked(u);
  for (auto& w : unit.works) w.wait();
  unit.works.clear();
  unit.staged.clear();
  unit.in_flight = false;
  at::NoGradGuard no_grad;
  for (auto* g : unit.groups) {
    for (std::size_t i = 0; i < g->params.size(); ++i) g->params[i].set_data(g->param_views[i]);
  }
  unit.gathered = true;
  memory_trace::event("gathered", u, 0, device_of(unit.groups), live_numel_);
}

void PartitionedParams::release_locked(std::size_t u) {
  auto& unit = *units_[u];
  if (unit.in_flight) finish_gather_locked(u);  // never free storage a collective is still writing
  if (!unit.gathered) return;
  at::NoGradGuard no_grad;
  for (auto* g : unit.groups) {
    const auto empty = at::empty({0}, g->param_flat.options());
    for (auto& p : g->params) p.set_data(empty);
    resize_storage(g->param_flat, 0);
  }
  unit.gathered = false;
  live_numel_ -= unit.numel;
  memory_trace::event("released", u, 0, device_of(unit.groups), live_numel_);
}

void PartitionedParams::prefetch_locked(std::size_t u) {
  auto& unit = *units_[u];
  if (unit.gathered || unit.in_flight) return;
  if (live_numel_ + unit.numel > options_.max_live_parameters) return;
  start_gather_locked(u);
}

void PartitionedParams::prefetch_window_locked(std::ptrdiff_t from, std::ptrdiff_t step) {
  // The window counts units already gathered or in flight too, so it slides one unit per call in steady state.
  // prefetch_numel 0 (no prefetch) ends it before the first unit.
  std::int64_t ahead = 0;
  for (std::ptrdiff_t i = from + step; i >= 0 && i < static_cast<std::ptrdiff_t>(order_.size()); i += step) {
    if (ahead >= options_.prefetch_numel) break;
    const std::size_t u = order_[static_cast<std::size_t>(i)];
    prefetch_locked(u);
    if (!units_[u]->gathered && !units_[u]->in_flight) break;  // over max_live_parameters: keep the order
    ahead += units_[u]->numel;
  }
}

void PartitionedParams::gather(std::size_t u) {
  std::lock_guard<std::recursive_mutex> lock(mutex_);
  finish_gather_locked(u);
}

void PartitionedParams::release(std::size_t u) {
  std::lock_guard<std::recursive_mutex> lock(mutex_);
  if (!units_[u]->persistent) release_locked(u);  // the root and small units stay whole, as always
}

void PartitionedParams::begin_forward() {
  std::lock_guard<std::recursive_mutex> lock(mutex_);
  finish_gather_locked(0);
}

void PartitionedParams::before_forward(std::size_t u) {
  std::lock_guard<std::recursive_mutex> lock(mutex_);
  if (!order_recorded_ && !backward_active_) order_.push_back(u);
  finish_gather_locked(u);
  if (order_recorded_ && !backward_active_) {
    const auto it = std::find(order_.begin(), order_.end(), u);
    if (it != order_.end()) prefetch_window_locked(it - order_.begin(), +1);
  }
}

void PartitionedParams::after_forward(std::size_t u, std::vector<at::Tensor>& outputs) {
  std::lock_guard<std::recursive_mutex> lock(mutex_);
  if (at::GradMode::is_enabled()) {
    for (auto& out : outputs) {
      if (!out.defined() || !out.requires_grad()) continue;
      // The gradient of the unit's output arrives just before the unit's own backward needs its weights.
      out.register_hook([this, u](const at::Tensor& grad) {
        std::lock_guard<std::recursive_mutex> hook_lock(mutex_);
        finish_gather_locked(u);
        const auto it = std::find(order_.begin(), order_.end(), u);
        if (it != order_.end()) prefetch_window_locked(it - order_.begin(), -1);
        return grad;
      });
    }
  }
  // During backward (activation checkpointing re-runs forwards) the weights must stay until the gradients are in.
  if (backward_active_ || units_[u]->persistent) return;
  // Kept for its backward when that comes soon enough (DeepSpeed's max_reuse_distance) and memory allows.
  const auto distance = reuse_distance(u);
  if (distance && *distance <= options_.max_reuse_distance && live_numel_ <= options_.max_live_parameters) return;
  release_locked(u);
}

std::optional<std::int64_t> PartitionedParams::reuse_distance(std::size_t u) const {
  if (!order_recorded_) return std::nullopt;
  const auto it = std::find(order_.begin(), order_.end(), u);
  if (it == order_.end()) return std::nullopt;
  // Units after u run forward, then backward in reverse, before u's backward: each counts twice.
  std::int64_t later = 0;
  for (auto next = it + 1; next != order_.end(); ++next) later += units_[*next]->numel;
  return 2 * later;
}

void PartitionedParams::begin_backward() {
  std::lock_guard<std::recursive_mutex> lock(mutex_);
  order_recorded_ = true;
  backward_active_ = true;
  for (auto& unit : units_) unit->groups_done = 0;
}

void PartitionedParams::on_unit_gradients_done(std::size_t u) {
  std::lock_guard<std::recursive_mutex> lock(mutex_);
  auto& unit = *units_[u];
  if (++unit.groups_done < unit.groups.size()) return;
  if (!unit.persistent) release_locked(u);
}

void PartitionedParams::end_backward() {
  std::lock_guard<std::recursive_mutex> lock(mutex_);
  backward_active_ = false;
  for (std::size_t u = 0; u < units_.size(); ++u) {
    if (!units_[u]->persistent) release_locked(u);
  }
}

void PartitionedParams::invalidate() {
  std::lock_guard<std::recursive_mutex> lock(mutex_);
  for (std::size_t u = 0; u < units_.size(); ++u) {
    release_locked(u);
    // Persistent units (the root, small units) stay whole between steps, as DeepSpeed's persistent
    // parameters do: refresh them from the new shards now.
    if (units_[u]->persistent) finish_gather_locked(u);
  }
}

std::int64_t PartitionedParams::host_bytes() const {
  std::int64_t bytes = 0;
  for (const auto& g : groups_) {
    if (options_.offload) bytes += g->param_shard.numel() * static_cast<std::int64_t>(g->param_shard.element_size());
  }
  return bytes;
}

void PartitionedParams::update_shards_from_full(std::size_t u) {
  std::lock_guard<std::recursive_mutex> lock(mutex_);
  at::NoGradGuard no_grad;
  for (auto* g : units_[u]->groups) g->copy_own_chunks(g->param_flat, g->param_shard, comm_->rank());
}

}  // namespace deepspeed::zero
