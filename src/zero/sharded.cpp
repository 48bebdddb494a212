// Stages 1 and 2: optimizer state, fp32 masters and reduced gradients sharded; the weights replicated.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "deepspeed/zero/init.h"
#include "src/zero/strategies.h"

namespace deepspeed::zero {

ShardedStrategy::ShardedStrategy(int stage, LayoutInputs in) : ShardedStateStrategy(stage, in) {
  materialize_presharded(module_->parameters(), comm_->device(), in.model_dtype);
  flat_groups_ = build_flat_groups(in.param_groups, FlatOptions{bucket_numel_, kAlignment, comm_->world_size()});
  std::vector<FlatGroup*> groups;
  for (const auto& g : flat_groups_) groups.push_back(g.get());
  attach(std::move(groups), in, [this](std::size_t g, const ShardBuffer& master) { take_own_chunks(g, master); });
}

void ShardedStrategy::take_own_chunks(std::size_t g, const ShardBuffer& master) const {
  const FlatGroup& group = *flat_groups_[g];
  for (std::size_t b = 0; b < group.plan.buckets.size(); ++b) {
    master.chunk(b).copy_(group.chunk_in_full(group.param_flat, b, comm_->rank()));
  }
}

ShardedStrategy::~ShardedStrategy() { detach(); }

void ShardedStrategy::after_optimizer_step() {
  // Each rank refreshes its own chunk of every bucket, then every bucket is all-gathered (all in flight at
  // once; a rank's input is a copy because Gloo does not accept an input aliasing the output).
  queue_host_steps();
  at::NoGradGuard no_grad;
  std::vector<comm::Work> works;
  std::vector<at::Tensor> inputs;
  for (std::size_t g = 0; g < flat_groups_.size(); ++g) {
    FlatGroup& group = *flat_groups_[g];
    for (std::size_t b = 0; b < group.plan.buckets.size(); ++b) {
      at::Tensor output = group.bucket(group.param_flat, b);
      inputs.push_back(updated_chunk(g, b, group.param_flat.options()));
      comm::CallerScope caller("ShardedOptimizer.all_gather_params");
      works.push_back(comm_->all_gather(output, inputs.back()));
    }
  }
  uploads_enqueued();
  for (auto& w : works) w.wait();
}

void ShardedStrategy::adopt_parameter_values(std::size_t) {
  at::NoGradGuard no_grad;
  for (std::size_t g = 0; g < flat_groups_.size(); ++g) take_own_chunks(g, masters_->buffers()[g]);
}

}  // namespace deepspeed::zero
