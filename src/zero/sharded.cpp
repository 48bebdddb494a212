// Stages 1 and 2: optimizer state, fp32 masters and reduced gradients sharded; the weights replicated.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "deepspeed/zero/init.h"
#include "src/zero/shard_checkpoint.h"
#include "src/zero/strategies.h"

namespace deepspeed::zero {

ShardedStrategy::ShardedStrategy(int stage, LayoutInputs in)
    : Strategy(stage, in.bucket_numel, in.module, in.comm), num_optimizer_groups_(in.param_groups.size()) {
  materialize_presharded(module_->parameters(), comm_->device(), in.model_dtype);
  flat_groups_ = build_flat_groups(in.param_groups, FlatOptions{bucket_numel_, kAlignment, comm_->world_size()});
  std::vector<FlatGroup*> groups;
  for (const auto& g : flat_groups_) groups.push_back(g.get());
  reducer_ = std::make_unique<BucketReducer>(groups, comm_, in.reducer, in.placement);
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> masters;
  for (auto* g : groups) {
    masters.push_back(in.placement.empty(StateKind::kMasterWeights, g->plan.shard_numel, at::kFloat));
    g->copy_own_chunks(g->param_flat, masters.back(), comm_->rank());
  }
  masters_ = std::make_unique<MasterWeights>(std::move(groups), std::move(masters), MasterWeights::View::kPerGroup);
}

ShardedStrategy::~ShardedStrategy() = default;

std::vector<std::vector<at::Tensor>> ShardedStrategy::optimizer_params() const {
  return masters_->optimizer_params(num_optimizer_groups_);
}

std::vector<at::Tensor> ShardedStrategy::optimizer_gradients() {
  return masters_->attach_gradients(reducer_->gradients());
}

void ShardedStrategy::after_optimizer_step() {
  // Each rank refreshes its own chunk of every bucket, then every bucket is all-gathered (all in flight at
  // once; a rank's input is a copy because Gloo does not accept an input aliasing the output).
  at::NoGradGuard no_grad;
  std::vector<comm::Work> works;
  std::vector<at::Tensor> inputs;
  for (std::size_t g = 0; g < flat_groups_.size(); ++g) {
    FlatGroup& group = *flat_groups_[g];
    for (std::size_t b = 0; b < group.plan.buckets.size(); ++b) {
      at::Tensor input = group.chunk_in_shard(masters_->tensors()[g], b).to(group.param_flat.options(), false, true);
      at::Tensor output = group.bucket(group.param_flat, b);
      inputs.push_back(input);
      works.push_back(comm_->all_gather(output, inputs.back()));
    }
  }
  for (auto& w : works) w.wait();
}

void ShardedStrategy::end_step() {
  masters_->release_gradients();
  reducer_->zero_grad();
}

void ShardedStrategy::adopt_parameter_values(std::size_t) {
  at::NoGradGuard no_grad;
  for (std::size_t g = 0; g < flat_groups_.size(); ++g) {
    flat_groups_[g]->copy_own_chunks(flat_groups_[g]->param_flat, masters_->tensors()[g], comm_->rank());
  }
}

void ShardedStrategy::save(checkpoint::SaveTarget& target) {
  save_layout(target, masters_->groups(), comm_->world_size());
  save_master_shards(target, shard_layout(*masters_, bucket_numel_, stage_, *comm_), masters_->tensors());
}

void ShardedStrategy::load(checkpoint::LoadSource& source, const checkpoint::LoadOptions& options) {
  if (!options.restores_optimizer()) return;  // the masters took the loaded weights already
  check_saved_stage(source, [](int saved) { return saved == 1 || saved == 2; });
  load_master_shards(source, shard_layout(*masters_, bucket_numel_, stage_, *comm_), masters_->tensors());
  after_optimizer_step();  // the weights are the restored masters on every rank
}

void ShardedStrategy::save_optimizer_state(checkpoint::SaveTarget& target,
                                           const std::function<c10::IValue()>& state) const {
  target.rank_states.insert("base_optimizer_state", state());
}

c10::IValue ShardedStrategy::load_optimizer_state(checkpoint::LoadSource& source) {
  return load_optimizer_shards(source, shard_layout(*masters_, bucket_numel_, stage_, *comm_));
}

}  // namespace deepspeed::zero
