// What ZeRO stages 1–3 share: fp32 master shards updated by the optimizer, gradient shards from the reducer,
// and their per-rank checkpoint.
#include <ATen/ATen.h>

#include "src/zero/shard_checkpoint.h"
#include "src/zero/strategies.h"

namespace deepspeed::zero {

ShardedStateStrategy::ShardedStateStrategy(int stage, const LayoutInputs& in)
    : Strategy(stage, in.bucket_numel, in.module, in.comm), num_optimizer_groups_(in.param_groups.size()) {}

ShardedStateStrategy::~ShardedStateStrategy() = default;

void ShardedStateStrategy::attach(std::vector<FlatGroup*> groups, const LayoutInputs& in, std::vector<at::Tensor> masters) {
  reducer_ = std::make_unique<BucketReducer>(groups, comm_, in.reducer, in.placement);
  masters_ = std::make_unique<MasterWeights>(std::move(groups), std::move(masters), MasterWeights::View::kPerGroup);
}

void ShardedStateStrategy::detach() {
  reducer_.reset();
  masters_.reset();
}

std::vector<std::vector<at::Tensor>> ShardedStateStrategy::optimizer_params() const {
  return masters_->optimizer_params(num_optimizer_groups_);
}

std::vector<at::Tensor> ShardedStateStrategy::optimizer_gradients() {
  return masters_->attach_gradients(reducer_->gradients());
}

void ShardedStateStrategy::end_step() {
  masters_->release_gradients();
  reducer_->zero_grad();
}

void ShardedStateStrategy::save(checkpoint::SaveTarget& target) {
  save_layout(target, masters_->groups(), comm_->world_size());
  save_master_shards(target, shard_layout(*masters_, bucket_numel_, stage_, *comm_), masters_->tensors());
}

void ShardedStateStrategy::load(checkpoint::LoadSource& source, const checkpoint::LoadOptions& options) {
  if (!options.restores_optimizer()) return;  // the masters took the loaded weights already
  check_saved_stage(source, [this](int saved) { return loads_stage(saved); });
  load_master_shards(source, shard_layout(*masters_, bucket_numel_, stage_, *comm_), masters_->tensors());
  after_optimizer_step();  // the model's weights become the restored masters
}

void ShardedStateStrategy::save_optimizer_state(checkpoint::SaveTarget& target,
                                                const std::function<c10::IValue()>& state) const {
  target.rank_states.insert("base_optimizer_state", state());
}

c10::IValue ShardedStateStrategy::load_optimizer_state(checkpoint::LoadSource& source) {
  return load_optimizer_shards(source, shard_layout(*masters_, bucket_numel_, stage_, *comm_));
}

}  // namespace deepspeed::zero
