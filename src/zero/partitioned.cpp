// Stage 3: the sharded layout over ZeRO-3 units, with partitioned weights.
#include <map>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <c10/core/impl/VirtualGuardImpl.h>

#include "deepspeed/util/logging.h"
#include "deepspeed/zero/init.h"
#include "src/zero/find_units.h"
#include "src/zero/strategies.h"

namespace deepspeed::zero {

namespace {

// units[u][g]: the trainable parameters of unit u in optimizer group g; unit 0 is the root (parameters in no
// declared unit). A parameter belongs to the first unit whose module holds it.
std::vector<std::vector<std::vector<at::Tensor>>> params_by_unit(const std::vector<Unit>& units,
                                                                 const std::vector<std::vector<at::Tensor>>& groups) {
  std::map<const c10::TensorImpl*, std::pair<std::size_t, std::size_t>> where;  // param → (optimizer group, index)
  for (std::size_t g = 0; g < groups.size(); ++g) {
    for (std::size_t i = 0; i < groups[g].size(); ++i) where[groups[g][i].unsafeGetTensorImpl()] = {g, i};
  }
  std::vector<std::vector<std::vector<at::Tensor>>> out(units.size() + 1, std::vector<std::vector<at::Tensor>>(groups.size()));
  for (std::size_t u = 0; u < units.size(); ++u) {
    for (const auto& p : units[u].module()->parameters()) {
      auto it = where.find(p.unsafeGetTensorImpl());
      if (it == where.end()) continue;  // frozen, or already in an earlier unit
      out[u + 1][it->second.first].push_back(p);
      where.erase(it);
    }
  }
  for (std::size_t g = 0; g < groups.size(); ++g) {
    for (const auto& p : groups[g]) {
      if (where.count(p.unsafeGetTensorImpl())) out[0][g].push_back(p);
    }
  }
  return out;
}


}  // namespace

PartitionedStrategy::PartitionedStrategy(LayoutInputs in, PartitionOptions partition, bool gather_16bit_weights_on_save)
    : ShardedStateStrategy(3, in), gather_16bit_weights_on_save_(gather_16bit_weights_on_save) {
  const auto units = find_units(module_);
  partitioned_ = std::make_unique<PartitionedParams>(params_by_unit(units, in.param_groups), comm_, partition);
  // Frozen parameters zero::Init partitioned stay whole from here on (they take no part in ZeRO-3).
  materialize_presharded(module_->parameters(), comm_->device(), in.model_dtype);
  for (std::size_t u = 0; u < units.size(); ++u) units[u].bind(partitioned_.get(), u + 1);
  const auto groups = partitioned_->groups();
  // offload_param with a 16-bit model: the CPU optimizer's 16-bit copies of the host buckets are the host
  // weight shards themselves, so the step writes the weights in place and nothing is copied after it.
  copies_in_weight_shards_ = partition.offload;
  attach(groups, in, [&groups](std::size_t g, const ShardBuffer& master) { master.copy_from(groups[g]->param_shard); },
         partitioned_->host_bytes());
  PartitionedParams* partitioned = partitioned_.get();
  reducer_->on_group_done([partitioned, groups](std::size_t g) { partitioned->on_unit_gradients_done(groups[g]->unit); });
  DS_LOG_DIST(kInfo, "ZeRO-3: ", units.size(), " units + root, ", groups.size(), " parameter groups",
              partition.offload ? " (weight shards on the host: offload_param)" : "");
}

bool PartitionedStrategy::writes_shard_in_place(std::size_t g, std::size_t b) const {
  return copies_in_weight_shards_ && !param_copies_.empty() && fused_cpu_optimizer_ &&
         placement_.on_host(*masters_->groups()[g], b);
}

std::int64_t PartitionedStrategy::host_bytes() const {
  // Under offload_param the 16-bit copies the base counts are views of the weight shards counted here.
  std::int64_t aliased = 0;
  if (copies_in_weight_shards_) {
    for (const auto& copies : param_copies_) aliased += copies.host_bytes();
  }
  return ShardedStateStrategy::host_bytes() - aliased + partitioned_->host_bytes();
}

PartitionedStrategy::~PartitionedStrategy() { detach(); }

void PartitionedStrategy::begin_backward(bool boundary) {
  before_backward(boundary);
  reducer_->prepare_backward(boundary);
  partitioned_->begin_backward();
}

void PartitionedStrategy::end_backward() {
  reducer_->finish_backward();
  partitioned_->end_backward();
}

void PartitionedStrategy::after_optimizer_step() {
  queue_host_steps();
  at::NoGradGuard no_grad;
  const auto& groups = masters_->groups();
  bool downloads = false;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    const FlatGroup& group = *groups[g];
    for (std::size_t b = 0; b < group.plan.buckets.size(); ++b) {
      if (writes_shard_in_place(g, b)) {
        wait_for_update(g, b);
        continue;
      }
      at::Tensor shard_chunk = group.chunk_in_shard(group.param_shard, b);
      if (shard_chunk.is_cpu() && !placement_.on_host(group, b) && !placement_.device().is_cpu()) {
        // offload_param, a bucket stepped on the device: converted there, then one DMA into the host shard, so
        // that this thread does no CPU pass over it while the CPU optimizer's threads are busy.
        shard_chunk.copy_(updated_chunk(g, b, shard_chunk.options().device(placement_.device())), /*non_blocking=*/true);
        downloads = true;
      } else {
        shard_chunk.copy_(updated_chunk(g, b, shard_chunk.options()));
      }
    }
  }
  uploads_enqueued();
  // The host shards must be final when the step returns (a checkpoint reads them on the CPU); the next
  // gathers would have waited for the downloads anyway.
  if (downloads) c10::impl::VirtualGuardImpl(placement_.device().type()).getStream(placement_.device()).synchronize();
  partitioned_->invalidate();
}

void PartitionedStrategy::adopt_parameter_values(std::size_t u) {
  partitioned_->update_shards_from_full(u);
  at::NoGradGuard no_grad;
  const auto& groups = masters_->groups();
  for (std::size_t g = 0; g < groups.size(); ++g) {
    if (groups[g]->unit == u) masters_->buffers()[g].copy_from(groups[g]->param_shard);
  }
}

}  // namespace deepspeed::zero
