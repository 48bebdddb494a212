// What ZeRO stages 1–3 share: fp32 master shards updated by the optimizer, gradient shards from the reducer,
// their placement (device, or host under ZeRO-Offload), and their per-rank checkpoint.
#include <future>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <c10/core/impl/VirtualGuardImpl.h>

#include "deepspeed/util/logging.h"
#include "deepspeed/util/strings.h"
#include "src/zero/shard_checkpoint.h"
#include "src/zero/step_speculation.h"
#include "src/zero/strategies.h"

namespace deepspeed::zero {

ShardedStateStrategy::ShardedStateStrategy(int stage, const LayoutInputs& in)
    : Strategy(stage, in.bucket_numel, in.module, in.comm),
      num_optimizer_groups_(in.param_groups.size()),
      placement_(in.placement),
      model_dtype_(in.model_dtype) {}

ShardedStateStrategy::~ShardedStateStrategy() = default;

void ShardedStateStrategy::attach(std::vector<FlatGroup*> groups, const LayoutInputs& in,
                                  const std::function<void(std::size_t, const ShardBuffer&)>& fill,
                                  std::int64_t host_bytes_held) {
  if (in.check_host_memory && placement_.offloads()) {
    std::vector<std::vector<std::int64_t>> numels;
    for (const auto* group : groups) numels.push_back(group->numels());
    in.check_host_memory(numels, host_bytes_held);
  }
  reducer_ = std::make_unique<BucketReducer>(groups, comm_, in.reducer, placement_);
  at::NoGradGuard no_grad;
  std::vector<ShardBuffer> masters;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    masters.push_back(placement_.shard_buffer(*groups[g], StateKind::kMasterWeights, at::kFloat));
    fill(g, masters.back());
    // A 16-bit model gets 16-bit copies of its offloaded masters for the CPU optimizer to write into (under
    // offload_param, views of the host weight shard itself); an fp32 model uploads its masters themselves.
    if (model_dtype_ != at::kFloat) {
      param_copies_.push_back(placement_.shard_buffer(*groups[g], StateKind::kParamCopies, model_dtype_,
                                                      copies_in_weight_shards_ ? groups[g]->param_shard : at::Tensor()));
    }
  }
  for (std::size_t g = 0; g < groups.size(); ++g) {
    for (std::size_t b = 0; b < groups[g]->plan.buckets.size(); ++b) step_order_.push_back({g, b});
  }
  masters_ = std::make_unique<MasterWeights>(std::move(groups), std::move(masters), MasterWeights::View::kPerGroup);
}

std::int64_t ShardedStateStrategy::host_bytes() const {
  std::int64_t bytes = reducer_->host_bytes();
  for (const auto& m : masters_->buffers()) bytes += m.host_bytes();
  for (const auto& c : param_copies_) bytes += c.host_bytes();
  if (speculation_) bytes += speculation_->backup_bytes();
  return bytes;
}

std::vector<std::vector<std::int64_t>> ShardedStateStrategy::flat_group_numels() const {
  std::vector<std::vector<std::int64_t>> out;
  for (const auto* group : masters_->groups()) out.push_back(group->numels());
  return out;
}

void ShardedStateStrategy::detach() {
  if (speculation_) speculation_->abandon();  // an update waiting for a verdict that will not come
  step_worker_.reset();  // finishes a queued update before the buffers it writes go
  reducer_.reset();
  masters_.reset();
}

std::vector<std::vector<at::Tensor>> ShardedStateStrategy::optimizer_params() const {
  return masters_->optimizer_params(num_optimizer_groups_);
}

std::vector<std::vector<at::Tensor>> ShardedStateStrategy::optimizer_param_copies() const {
  if (!placement_.offloads() || param_copies_.empty()) return {};
  std::vector<std::vector<at::Tensor>> out(num_optimizer_groups_);
  const auto& groups = masters_->groups();
  for (std::size_t g = 0; g < groups.size(); ++g) {
    auto& dest = out.at(groups[g]->optimizer_group);
    for (const auto& piece : masters_->buffers()[g].pieces()) {
      // The copy's host piece covers the same buckets as the master's host piece; device pieces have none.
      at::Tensor copy;
      for (const auto& c : param_copies_[g].pieces()) {
        if (c.first_bucket == piece.first_bucket && piece.tensor.device().is_cpu()) copy = c.tensor;
      }
      dest.push_back(copy);
    }
  }
  return out;
}

std::vector<at::Tensor> ShardedStateStrategy::optimizer_gradients() {
  // The optimizer is about to rewrite the 16-bit copies: the last step's uploads must have read them.
  if (uploads_done_) uploads_done_->synchronize();
  return masters_->attach_gradients(reducer_->shards(), {.host_16bit = fused_cpu_optimizer_, .device_16bit = optimizer_upcasts_});
}

bool ShardedStateStrategy::use_host_stepper(HostStepper stepper, HostStepMode mode) {
  if (!fused_cpu_optimizer_ || !placement_.offloads()) return false;
  const auto& groups = masters_->groups();
  std::int64_t host_numel = 0;
  for (const auto* group : groups) {
    for (std::size_t b = 0; b < group->plan.buckets.size(); ++b) {
      if (placement_.on_host(*group, b)) host_numel += group->plan.buckets[b].chunk;
    }
  }
  if (host_numel == 0) return false;
  stepper_ = std::move(stepper);
  step_mode_ = mode;
  optimizer_index_ = masters_->optimizer_positions();
  host_steps_.assign(groups.size(), {});
  for (std::size_t g = 0; g < groups.size(); ++g) host_steps_[g].resize(groups[g]->plan.buckets.size());
  step_worker_ = std::make_unique<SerialWorker>();
  if (mode == HostStepMode::kSpeculative) {
    speculation_ = std::make_unique<StepSpeculation>(speculation_backup_numel(host_numel));
  }
  if (mode != HostStepMode::kAfterStep) {
    // On the landing (or norm) thread, after the chunk's last micro-step landed; stepping_in_backward_ was set before
    // this backward began and the previous window's landings were drained.
    reducer_->on_host_chunk_final([this](std::size_t g, std::size_t b) {
      if (stepping_in_backward_) queue_host_step(g, b, 1.0f, /*speculative=*/step_mode_ == HostStepMode::kSpeculative);
    });
  }
  return true;
}

std::pair<std::int64_t, std::int64_t> ShardedStateStrategy::speculation_counts() const {
  if (!speculation_) return {0, 0};
  return {speculation_->speculated_steps(), speculation_->rolled_back_steps()};
}

void ShardedStateStrategy::before_backward(bool boundary) {
  stepping_in_backward_ = false;
  if (!stepper_ || step_mode_ == HostStepMode::kAfterStep || !boundary || !fused_cpu_optimizer_) return;
  // The updates below rewrite the 16-bit copies the last step uploaded from.
  if (uploads_done_) uploads_done_->synchronize();
  // A step that will not speculate (the last one clipped) queues its updates once the factor is known, in
  // step order, as a whole-step update does; queued as they landed they would wait for it all the same.
  if (speculation_ && !speculation_->begin_step()) return;
  stepper_->begin_during_backward();
  stepping_in_backward_ = true;
}

bool ShardedStateStrategy::queue_host_steps() {
  if (!stepper_ || !fused_cpu_optimizer_) return false;
  if (stepping_in_backward_) {  // queued as they landed
    stepping_in_backward_ = false;
    if (speculation_) settle_speculation();
    return false;
  }
  const float scale = stepper_->gradient_scale();
  if (speculation_) speculation_->decide(scale);  // a step that did not speculate still decides whether the next does
  const auto& groups = masters_->groups();
  for (const auto& [g, b] : step_order_) {
    if (placement_.on_host(*groups[g], b)) queue_host_step(g, b, scale, /*speculative=*/false);
  }
  return true;
}

void ShardedStateStrategy::settle_speculation() {
  const float scale = stepper_->gradient_scale();
  const auto redo = speculation_->decide(scale);
  for (const auto& r : redo) {
    const HostRange h = host_range(r.group, r.bucket);
    const at::Tensor grad = reducer_->shard_chunk(r.group, r.bucket).narrow(0, r.begin, r.numel);
    // Behind the speculative update of the same range on the serial worker, and before the bucket's upload.
    auto task = std::make_shared<std::packaged_task<void()>>(
        [restore = stepper_->restore, range = stepper_->range, h, r, grad, scale] {
          at::NoGradGuard no_grad;
          restore(h.optimizer_group, h.optimizer_index, h.offset + r.begin, r.numel, r.backup);
          range(h.optimizer_group, h.optimizer_index, h.offset + r.begin, r.numel, grad, scale, nullptr);
        });
    host_steps_[r.group][r.bucket] = task->get_future().share();
    step_worker_->submit([task] { (*task)(); });
  }
  // Logged at the 1st, 2nd, 4th, 8th, ... rollback: visible in warm-up, quiet after it.
  if (const auto rolled = speculation_->rolled_back_steps(); !redo.empty() && (rolled & (rolled - 1)) == 0) {
    log::print_rank0(util::cat("super_offload: gradient clipping scaled this step's gradients by ", scale,
                               ": its speculative host updates were undone and redone (", rolled, " of ",
                               speculation_->speculated_steps(), " speculative steps so far)"));
  }
}

ShardedStateStrategy::HostRange ShardedStateStrategy::host_range(std::size_t g, std::size_t b) const {
  const FlatGroup& group = *masters_->groups()[g];
  const auto& pieces = masters_->buffers()[g].pieces();
  std::size_t p = 0;
  while (b >= pieces.at(p).end_bucket) ++p;
  const auto& bucket = group.plan.buckets[b];
  return HostRange{group.optimizer_group, optimizer_index_[g][p], bucket.shard_offset - pieces[p].begin, bucket.chunk};
}

void ShardedStateStrategy::queue_host_step(std::size_t g, std::size_t b, float scale, bool speculative) {
  const HostRange h = host_range(g, b);
  StepSpeculation* speculation = speculative ? speculation_.get() : nullptr;
  auto task = std::make_shared<std::packaged_task<void()>>(
      [range = stepper_->range, speculation, h, g, b, scale, grad = reducer_->shard_chunk(g, b)] {
        at::NoGradGuard no_grad;
        if (!speculation) {
          range(h.optimizer_group, h.optimizer_index, h.offset, h.numel, grad, scale, nullptr);
          return;
        }
        // As much as the backup holds speculatively, the rest once the factor is known.
        for (std::int64_t done = 0; done < h.numel;) {
          const auto t = speculation->next(g, b, done, h.numel - done);
          if (t.skip) return;
          range(h.optimizer_group, h.optimizer_index, h.offset + done, t.numel, grad.narrow(0, done, t.numel),
                t.backup ? 1.0f : t.scale, t.backup);
          done += t.numel;
        }
      });
  host_steps_[g][b] = task->get_future().share();
  step_worker_->submit([task] { (*task)(); });
}

double ShardedStateStrategy::squared_gradient_norm(const std::vector<at::Tensor>& grads, const SquaredNorm& squared_norm) {
  // grads are optimizer_gradients()'s: one per piece of each group's masters, in order.
  std::vector<at::Tensor> rest;
  double tracked = 0.0;
  std::size_t k = 0;
  for (std::size_t g = 0; g < masters_->groups().size(); ++g) {
    const auto host = reducer_->host_squared_norm(g);
    for (const auto& piece : masters_->buffers()[g].pieces()) {
      if (piece.host && host) tracked += *host;
      else rest.push_back(grads.at(k));
      ++k;
    }
  }
  return tracked + (rest.empty() ? 0.0 : squared_norm(rest));
}

at::Tensor ShardedStateStrategy::updated_chunk(std::size_t g, std::size_t b, const at::TensorOptions& options) const {
  at::Tensor chunk = at::empty({masters_->buffers()[g].chunk(b).numel()}, options);
  write_updated_chunk(g, b, chunk);
  return chunk;
}

void ShardedStateStrategy::write_updated_chunk(std::size_t g, std::size_t b, at::Tensor& destination) const {
  const FlatGroup& group = *masters_->groups()[g];
  if (fused_cpu_optimizer_ && placement_.on_host(group, b)) {
    wait_for_update(g, b);
    destination.copy_(param_copies_[g].chunk(b), /*non_blocking=*/true);
  } else {
    destination.copy_(masters_->buffers()[g].chunk(b));
  }
}

void ShardedStateStrategy::wait_for_update(std::size_t g, std::size_t b) const {
  if (stepper_ && host_steps_[g][b].valid()) host_steps_[g][b].get();
}

void ShardedStateStrategy::uploads_enqueued() {
  if (!fused_cpu_optimizer_ || !placement_.device().is_cuda()) return;
  const c10::impl::VirtualGuardImpl impl(c10::DeviceType::CUDA);
  if (!uploads_done_) uploads_done_.emplace(c10::DeviceType::CUDA);
  uploads_done_->record(impl.getStream(placement_.device()));
}

void ShardedStateStrategy::end_step() {
  masters_->release_gradients();
  reducer_->zero_grad();
}

ShardLayout ShardedStateStrategy::shard_layout() const {
  return ShardLayout{masters_.get(), bucket_numel_, stage_, comm_->rank(), comm_->world_size()};
}

void ShardedStateStrategy::save(checkpoint::SaveTarget& target) {
  save_layout(target, masters_->groups(), comm_->world_size());
  save_master_shards(target, shard_layout());
}

void ShardedStateStrategy::load(checkpoint::LoadSource& source, const checkpoint::LoadOptions& options) {
  if (!options.restores_optimizer()) return;  // the masters took the loaded weights already
  check_saved_stage(source, [this](int saved) { return loads_stage(saved); });
  load_master_shards(source, shard_layout());
  const bool fused = fused_cpu_optimizer_;
  fused_cpu_optimizer_ = false;  // the copies hold the last step's values, not the loaded ones
  after_optimizer_step();  // the model's weights become the restored masters
  fused_cpu_optimizer_ = fused;
}

void ShardedStateStrategy::save_optimizer_state(checkpoint::SaveTarget& target,
                                                const std::function<c10::IValue()>& state) const {
  target.rank_states.insert("base_optimizer_state", joined_optimizer_state(state(), shard_layout()));
}

c10::IValue ShardedStateStrategy::load_optimizer_state(checkpoint::LoadSource& source) {
  return load_optimizer_shards(source, shard_layout());
}

}  // namespace deepspeed::zero
