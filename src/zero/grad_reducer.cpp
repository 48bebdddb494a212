#include "deepspeed/zero/grad_reducer.h"

#include <algorithm>
#include <deque>
#include <mutex>
#include <utility>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <c10/core/impl/VirtualGuardImpl.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include "src/zero/grad_convert.h"
#include "src/zero/grad_reducer_state.h"
#include "src/zero/landing_budget.h"
#include "src/zero/memory_trace.h"
#include "src/zero/serial_worker.h"

namespace deepspeed::zero {

Averaging Averaging::deepspeed(int world_size, bool prescale_gradients, double predivide_factor) {
  const double ws = world_size;
  // engine.allreduce_bucket: prescale divides by the world size up front; otherwise divide by the predivide
  // factor before the sum and by world_size/factor after it, which bounds fp16 overflow for large worlds.
  if (prescale_gradients) return {1.0 / ws, 1.0};
  return {1.0 / predivide_factor, predivide_factor == ws ? 1.0 : predivide_factor / ws};
}

struct BucketReducer::Shared {
  std::mutex mutex;
  BucketReducer* owner = nullptr;
  std::deque<std::pair<std::size_t, std::size_t>> reducing;  // device buckets launched, not yet folded in
};

namespace {

struct ReadyHook : torch::autograd::PostAccumulateGradHook {
  ReadyHook(std::weak_ptr<void> alive, std::function<void()> notify)
      : alive(std::move(alive)), notify(std::move(notify)) {}
  void operator()(const torch::autograd::Variable&) override {
    if (auto keep = alive.lock()) notify();
  }
  std::weak_ptr<void> alive;
  std::function<void()> notify;
};

}  // namespace

BucketReducer::BucketReducer(std::vector<FlatGroup*> groups, std::shared_ptr<comm::Communicator> comm,
                             ReducerOptions options, Placement placement)
    : comm_(std::move(comm)), options_(options), placement_(placement),
      averaging_(Averaging::deepspeed(comm_->world_size(), options.prescale_gradients,
                                      options.gradient_predivide_factor)),
      groups_(std::move(groups)), shared_(std::make_shared<Shared>()) {
  shared_->owner = this;
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    const FlatGroup& group = *groups_[g];
    auto state = std::make_unique<GroupState>();
    const auto opts = group.param_flat.options().dtype(options_.accum_dtype);
    if (keeps_full_buffer()) {
      state->grads_are_views = group.param_flat.scalar_type() == options_.accum_dtype;
      // Gradients converted into it allocate it at the first backward (one that keeps them as they are, never).
      if (state->grads_are_views) state->full = at::zeros({group.plan.total_numel}, opts);
    }
    // Reducing every micro-step accumulates into the shard, so it lives for the whole run. Reducing on the
    // boundary fills the shard once per window (allocated then, freed at zero_grad), keeping ZeRO-1's model
    // states at DeepSpeed's 4Ψ + 12Ψ/N between steps.
    if (!keeps_full_buffer()) state->shard = new_shard(group);
    const std::size_t nb = group.plan.buckets.size();
    if (placement_.offloads() && !keeps_full_buffer()) {
      const std::size_t host_buckets = placement_.host_buckets(group);
      // accumulate_on_device: a window's micro-steps are summed over the host buckets in a device buffer.
      // Otherwise a later micro-step needs a landing area, allocated by land_on_host() when one first comes
      // (never without gradient accumulation).
      if (options_.accumulate_on_device && host_buckets > 0) {
        const auto& last = group.plan.buckets[host_buckets - 1];
        state->window = ShardBuffer(&group, {ShardBuffer::Piece{0, host_buckets, 0,
                                                                at::zeros({last.shard_offset + last.chunk}, opts),
                                                                false}});
      }
    }
    state->pending.assign(nb, 0);
    state->counted.assign(group.params.size(), 0);
    state->written.assign(group.params.size(), 1);  // full starts zeroed
    state->kept.resize(group.params.size());
    state->works.resize(nb);
    state->input.resize(nb);
    state->output.resize(nb);
    state->launched.assign(nb, 0);
    state->budgeted.assign(nb, 0);
    state->launched_at.resize(nb);
    state->fresh.assign(nb, 1);
    state->host_squared.assign(nb, 0.0);
    state_.push_back(std::move(state));
    for (std::size_t i = 0; i < group.params.size(); ++i) {
      Shared* shared = shared_.get();
      torch::autograd::impl::set_post_acc_grad_hooks(
          group.params[i], std::make_unique<ReadyHook>(std::weak_ptr<void>(shared_), [shared, g, i] {
            std::lock_guard<std::mutex> lock(shared->mutex);
            if (shared->owner) shared->owner->on_gradient_ready(g, i);
          }));
    }
  }
  attach_gradient_views();
  if (placement_.offloads()) {
    worker_ = std::make_unique<SerialWorker>();
    if (placement_.device().is_cuda()) {
      copy_stream_ = c10::impl::VirtualGuardImpl(c10::DeviceType::CUDA).getStreamFromGlobalPool(placement_.device());
    }
    const auto element_bytes = static_cast<std::int64_t>(
        c10::elementSize(options_.communication_dtype.value_or(options_.accum_dtype)));
    std::int64_t largest = 0;
    for (const FlatGroup* group : groups_) {
      for (std::size_t b = 0; b < group->plan.buckets.size(); ++b) {
        if (placement_.on_host(*group, b)) largest = std::max(largest, group->plan.buckets[b].numel * element_bytes);
      }
    }
    landing_budget_ = std::make_unique<LandingBudget>(landing_cap(options_.landing_lead_bytes, largest));
  }
}

BucketReducer::~BucketReducer() {
  worker_.reset();  // finishes what it was doing before the state goes
  norm_worker_.reset();
  {
    std::lock_guard<std::mutex> lock(shared_->mutex);
    shared_->owner = nullptr;
  }
  for (auto* group : groups_) {
    for (auto& p : group->params) torch::autograd::impl::set_post_acc_grad_hooks(p, nullptr);
  }
}

std::size_t BucketReducer::num_buckets() const {
  std::size_t n = 0;
  for (const auto* g : groups_) n += g->plan.buckets.size();
  return n;
}

void BucketReducer::attach_gradient_views() {
  // The user may have reset grads (module->zero_grad() sets them to None): put the views back, keeping the
  // values a foreign tensor held.
  at::NoGradGuard no_grad;
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    if (!state_[g]->grads_are_views) continue;
    const FlatGroup& group = *groups_[g];
    for (std::size_t i = 0; i < group.params.size(); ++i) {
      auto p = group.params[i];
      const auto view = group.view_of(state_[g]->full, i);
      const auto& grad = p.grad();
      if (grad.defined() && grad.data_ptr() == view.data_ptr()) continue;
      if (grad.defined()) view.copy_(grad);
      p.mutable_grad() = view;
    }
  }
}

ShardBuffer BucketReducer::new_shard(const FlatGroup& group) const {
  return placement_.shard_buffer(group, StateKind::kGradientShards, options_.accum_dtype);
}

void BucketReducer::prepare_backward(bool boundary) {
  memory_trace::begin_backward();
  attach_gradient_views();
  std::lock_guard<std::mutex> lock(shared_->mutex);
  armed_ = options_.reduction == Reduction::kReduceScatterEachMicroStep || boundary;
  boundary_ = boundary;
  // Nothing to add to (the window's only backward), nothing to reduce or average: autograd's tensors as they are.
  as_they_are_ = as_they_are_allowed_ && boundary && backwards_in_window_ == 0 && comm_->world_size() == 1 &&
                 options_.reduction == Reduction::kAllReduce && averaging_.before == 1.0 && averaging_.after == 1.0 &&
                 !placement_.offloads();
  ++backwards_in_window_;
  if (armed_ && sharded()) {
    for (std::size_t g = 0; g < groups_.size(); ++g) {
      if (!state_[g]->shard.defined()) state_[g]->shard = new_shard(*groups_[g]);
    }
  }
  next_group_ = next_bucket_ = 0;
  shared_->reducing.clear();
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    auto& s = *state_[g];
    std::fill(s.counted.begin(), s.counted.end(), 0);
    std::fill(s.launched.begin(), s.launched.end(), 0);
    s.counted_total = 0;
    for (std::size_t b = 0; b < s.pending.size(); ++b) {
      s.pending[b] = static_cast<int>(groups_[g]->plan.buckets[b].members.size());
    }
  }
}

at::Tensor BucketReducer::staging(std::size_t g, std::size_t b) {
  auto& s = *state_[g];
  if (!s.input[b].defined()) {
    const auto dtype = options_.communication_dtype.value_or(options_.accum_dtype);
    reserve_landing(g, b, dtype);
    s.input[b] = at::zeros({groups_[g]->plan.buckets[b].numel}, groups_[g]->param_flat.options().dtype(dtype));
    memory_trace::send_buffer(static_cast<std::int64_t>(s.input[b].nbytes()));
    memory_trace::event("open", g, b, s.input[b].device());
  }
  return s.input[b];
}

void BucketReducer::on_gradient_ready(std::size_t g, std::size_t i) {
  auto& s = *state_[g];
  const FlatGroup& group = *groups_[g];
  auto p = group.params[i];
  memory_trace::event("grad", g, i, p.device());
  if (!s.grads_are_views && p.grad().defined()) {
    at::NoGradGuard no_grad;
    // An Embedding(sparse=true) hands over a sparse gradient. The buffers are dense (DeepSpeed's
    // sparse_gradients, its sparse all-reduce, is not implemented), so it joins them as a dense one; where the
    // gradients are views of the buffer, autograd already adds it into the dense view.
    const at::Tensor grad = p.grad().layout() == at::kStrided ? p.grad() : p.grad().to_dense();
    if (!keeps_full_buffer()) {
      const auto& bucket = group.plan.buckets[group.plan.bucket_of[i]];
      staging(g, group.plan.bucket_of[i])
          .narrow(0, group.plan.offset[i] - bucket.offset, p.numel())
          .copy_(grad.reshape(-1));
    } else if (as_they_are_ && !s.kept[i].defined() && grad.is_contiguous() && grad.scalar_type() == p.scalar_type() &&
               grad.sizes() == p.sizes()) {
      s.kept[i] = grad;
    } else {
      if (s.kept[i].defined()) fold_kept_gradient(g, i);
      hand_over_gradient(group.view_of(full(g), i), grad, /*accumulate=*/s.written[i] != 0);
      s.written[i] = 1;
    }
    p.mutable_grad().reset();  // the copy (or the kept tensor) holds it now
  }
  if (!armed_ || s.counted[i]) return;
  s.counted[i] = 1;
  --s.pending[group.plan.bucket_of[i]];
  launch_ready_locked();
  if (group_done_ && ++s.counted_total == group.params.size()) group_done_(g);
}

void BucketReducer::launch_ready_locked() {
  while (next_group_ < groups_.size()) {
    auto& s = *state_[next_group_];
    if (next_bucket_ == s.pending.size()) {
      ++next_group_;
      next_bucket_ = 0;
      continue;
    }
    if (s.pending[next_bucket_] > 0) return;
    launch(next_group_, next_bucket_++);
  }
}

void BucketReducer::launch(std::size_t g, std::size_t b) {
  at::NoGradGuard no_grad;
  auto& s = *state_[g];
  const FlatGroup& group = *groups_[g];
  const auto comm_dtype = options_.communication_dtype.value_or(options_.accum_dtype);
  at::Tensor input;
  if (!keeps_full_buffer()) {
    input = staging(g, b);
  } else {
    // Members that got no gradient this window (unused parameters) still hold the last window's.
    if (!s.grads_are_views) {
      for (const std::size_t i : group.plan.buckets[b].members) {
        if (as_they_are_ && s.kept[i].defined()) continue;
        if (s.kept[i].defined()) fold_kept_gradient(g, i);  // kept by an earlier backward of this window
        if (as_they_are_ && (!s.written[i] || !s.full.defined())) {  // (a buffer not yet allocated is zeros)
          // Unused this window, where one rank reads the gradients as autograd made them: a zero gradient of its
          // own, in the parameter's dtype, rather than the group's whole fp32 buffer allocated for one member.
          s.kept[i] = at::zeros_like(group.params[i], at::MemoryFormat::Contiguous);
          continue;
        }
        if (!s.written[i]) group.view_of(full(g), i).zero_();
        s.written[i] = 1;
      }
    }
    // One rank, no averaging: the all-reduce is the identity and the gradients are where they will be read.
    if (as_they_are_) return;
    input = group.bucket(full(g), b);
    if (input.scalar_type() != comm_dtype) {
      reserve_landing(g, b, comm_dtype);  // the cast copy is this bucket's send buffer until it lands
      s.input[b] = input = input.to(comm_dtype);
    }
  }
  if (averaging_.before != 1.0) input.mul_(averaging_.before);
  comm::CallerScope caller("BucketReducer");
  if (options_.reduction == Reduction::kAllReduce) {
    s.works[b] = comm_->all_reduce(input);
    if (s.input[b].defined()) s.output[b] = input;
  } else if (comm_->world_size() == 1 && s.input[b].defined()) {
    // One rank's reduce-scatter is the identity: its result is the private send buffer itself, so a bucket in
    // flight holds one bucket-sized buffer, not two (one GPU with offload: buckets wait for their landing).
    s.output[b] = input;
    s.works[b] = comm::Work();
  } else {
    s.output[b] = at::empty({group.plan.buckets[b].chunk}, input.options());
    s.works[b] = comm_->reduce_scatter(s.output[b], input);
  }
  s.launched[b] = 1;
  if (!lands(g, b)) {
    if (comm_->world_size() == 1 && s.input[b].defined()) {
      // Nothing to wait for: fold the bucket in now, so its send buffer is freed here (the fold is queued on
      // the stream before any later use of that memory) instead of every bucket being held to finish_backward()
      // (3.8B at ratio 0.5 on one H200: all of its 8 buckets, 7.05 GiB, at the end of backward).
      complete(g, b);
      return;
    }
    // Several ranks: the oldest reduction beyond the last few is folded in now, its send buffer freed, rather
    // than every bucket being held to finish_backward() (one full gradient at the peak). Under NCCL the wait
    // is the compute stream's, on a collective launched buckets ago; Gloo's blocks this thread until it is done.
    shared_->reducing.emplace_back(g, b);
    while (options_.reductions_in_flight > 0 && shared_->reducing.size() > options_.reductions_in_flight) {
      const auto [og, ob] = shared_->reducing.front();
      shared_->reducing.pop_front();
      complete(og, ob);
    }
    return;
  }
  if (s.budgeted[b] > 0) landing_budget_->launched(s.budgeted[b]);
  if (copy_stream_) {
    // The copy stream must not read the result before the compute stream produced it (a one-rank "collective"
    // is a plain copy on the compute stream; under NCCL the wait below covers it too).
    if (!s.launched_at[b]) s.launched_at[b].emplace(c10::DeviceType::CUDA);
    s.launched_at[b]->record(c10::impl::VirtualGuardImpl(c10::DeviceType::CUDA).getStream(placement_.device()));
  }
  worker_->submit([this, g, b] {
    try {
      land_on_host(g, b);
    } catch (...) {
      release_send_buffer(g, b);  // its bytes back to the budget, or backward would wait for it forever
      throw;
    }
  });
}

void BucketReducer::complete(std::size_t g, std::size_t b) {
  auto& s = *state_[g];
  if (!s.launched[b]) return;
  const FlatGroup& group = *groups_[g];
  at::NoGradGuard no_grad;
  s.works[b].wait();
  if (options_.reduction == Reduction::kAllReduce) {
    at::Tensor bucket = group.bucket(full(g), b);
    if (s.output[b].defined()) bucket.copy_(s.output[b]);
    if (averaging_.after != 1.0) bucket.mul_(averaging_.after);
  } else {
    // A host chunk completed here is a micro-step before the boundary, accumulating on the device.
    fold_into_shard(placement_.on_host(group, b) ? s.window.chunk(b) : s.shard.chunk(b), s.output[b]);
  }
  release_send_buffer(g, b);
  s.launched[b] = 0;
}

void BucketReducer::release_send_buffer(std::size_t g, std::size_t b) {
  auto& s = *state_[g];
  if (!keeps_full_buffer() && s.input[b].defined()) {
    memory_trace::send_buffer(-static_cast<std::int64_t>(s.input[b].nbytes()));
    memory_trace::event("free", g, b, s.input[b].device());
  }
  s.input[b] = at::Tensor();
  s.output[b] = at::Tensor();
  // After the buffer is dropped, so that what backward allocates once it goes on can reuse the memory.
  if (s.budgeted[b] > 0) landing_budget_->landed(std::exchange(s.budgeted[b], 0));
}

void BucketReducer::fold_into_shard(at::Tensor chunk, const at::Tensor& reduced) const {
  // On the boundary the whole window is reduced once; each micro-step adds one micro-step's worth.
  if (keeps_full_buffer()) chunk.copy_(reduced).mul_(averaging_.after);
  else chunk.add_(reduced, averaging_.after);
}

void BucketReducer::finish_backward() {
  {
    std::lock_guard<std::mutex> lock(shared_->mutex);
    if (!armed_) return;
    // Parameters that took no part in this backward still have (zero or accumulated) gradients to reduce.
    for (auto& s : state_) std::fill(s->pending.begin(), s->pending.end(), 0);
    launch_ready_locked();
    armed_ = false;
  }
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    for (std::size_t b = 0; b < state_[g]->works.size(); ++b) {
      if (!lands(g, b)) complete(g, b);
    }
  }
  if (worker_) worker_->drain();
  if (norm_worker_) norm_worker_->drain();  // after the landings, which queue the norms
}

}  // namespace deepspeed::zero
