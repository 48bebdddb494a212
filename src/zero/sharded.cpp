// Stages 1 and 2: optimizer state, fp32 masters and reduced gradients sharded; the weights replicated.
#include <unordered_map>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "deepspeed/util/logging.h"
#include "deepspeed/util/strings.h"
#include "deepspeed/zero/init.h"
#include "src/zero/strategies.h"

namespace deepspeed::zero {

ShardedStrategy::ShardedStrategy(int stage, LayoutInputs in)
    : ShardedStateStrategy(stage, in), write_back_behind_forward_(in.write_back_behind_forward) {
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

ShardedStrategy::~ShardedStrategy() {
  // The model outlives the engine: its weights get the last step's values, and its units stop calling here.
  try {
    finish_write_back();
  } catch (const std::exception& e) {
    DS_LOG(kWarning, "ZeRO: the last step's weights were not written back: ", e.what());
  }
  for (auto& unit : units_) unit.bind(nullptr, 0);
  detach();
}

bool ShardedStrategy::use_host_stepper(HostStepper stepper, HostStepMode mode) {
  if (!ShardedStateStrategy::use_host_stepper(std::move(stepper), mode)) return false;
  if (write_back_behind_forward_ && !defer_write_back()) {
    log::print_rank0("super_offload: the model declares no ZeRO-3 units (deepspeed::zero::Unit), so each step "
                     "writes all its new weights back before it returns; with units the next forward would "
                     "start beside the host update");
  }
  return true;
}

bool ShardedStrategy::defer_write_back() {
  units_ = Unit::claim(*module_);
  if (units_.empty()) return false;
  // A parameter belongs to the first unit whose module holds it (as at stage 3); the others to the root, 0.
  std::unordered_map<const void*, std::size_t> unit_of;
  for (std::size_t u = 0; u < units_.size(); ++u) {
    for (const auto& p : units_[u].module()->parameters()) unit_of.emplace(p.unsafeGetTensorImpl(), u + 1);
  }
  std::vector<BucketId> buckets;
  std::vector<std::vector<std::size_t>> bucket_units;
  for (std::size_t g = 0; g < flat_groups_.size(); ++g) {
    const FlatGroup& group = *flat_groups_[g];
    for (std::size_t b = 0; b < group.plan.buckets.size(); ++b) {
      buckets.push_back({g, b});
      auto& units = bucket_units.emplace_back();
      for (const std::size_t m : group.plan.buckets[b].members) {
        const auto it = unit_of.find(group.params[m].unsafeGetTensorImpl());
        units.push_back(it == unit_of.end() ? 0 : it->second);
      }
    }
  }
  WriteBackOrder order = plan_write_back(buckets, bucket_units, units_.size());
  step_order_ = order.sequence;
  const std::size_t at_step = order.unit_prefix[0];
  write_back_ = std::make_unique<ForwardWriteBack>(
      std::move(order), [this](std::size_t i) { write_bucket(step_order_[i], /*wait=*/true); }, [this] { gathers_started(); });
  for (std::size_t u = 0; u < units_.size(); ++u) units_[u].bind(write_back_.get(), u + 1);
  log::print_rank0(util::cat("super_offload: a step whose host updates wait for the gradient norm writes back the ",
                             at_step, " of ", buckets.size(), " weight buckets that hold parameters outside the model's ",
                             units_.size(), " units before it returns; the others land as the next forward reaches their units"));
  return true;
}

void ShardedStrategy::after_optimizer_step() {
  // Each rank refreshes its own chunk of every bucket, then every bucket is all-gathered (all in flight at
  // once; a rank's input is a copy because Gloo does not accept an input aliasing the output).
  const bool in_step_order = queue_host_steps();
  if (write_back_ && fused_cpu_optimizer_ && in_step_order) {
    write_back_->arm();
    return;
  }
  // Updates queued as their gradients landed run in (group, bucket) order: written back in it, each upload
  // overlaps the next bucket's update. (Deferred, the forward's order would wait for the last of them first.)
  for (std::size_t g = 0; g < flat_groups_.size(); ++g) {
    for (std::size_t b = 0; b < flat_groups_[g]->plan.buckets.size(); ++b) write_bucket({g, b}, /*wait=*/false);
  }
  gathers_started();
}

void ShardedStrategy::write_bucket(BucketId id, bool wait) {
  at::NoGradGuard no_grad;
  const auto [g, b] = id;
  FlatGroup& group = *flat_groups_[g];
  at::Tensor output = group.bucket(group.param_flat, b);
  if (comm_->world_size() == 1) {
    // One rank's all-gather is a copy: the update goes straight into the weights. Through a gather input
    // held until every bucket is gathered, it took a second copy of all the weights on the device at the
    // step (3.8B offloaded on one H200: 7 GiB of its 19 GiB peak).
    write_updated_chunk(g, b, output);
    return;
  }
  gather_inputs_.push_back(updated_chunk(g, b, group.param_flat.options()));
  comm::CallerScope caller("ShardedOptimizer.all_gather_params");
  gathers_.push_back(comm_->all_gather(output, gather_inputs_.back()));
  if (wait) gathers_.back().wait();
}

void ShardedStrategy::gathers_started() {
  uploads_enqueued();
  for (auto& w : gathers_) w.wait();
  gathers_.clear();
  gather_inputs_.clear();
}

void ShardedStrategy::adopt_parameter_values(std::size_t) {
  finish_write_back();  // the masters take the weights as they are after the last step, plus the caller's change
  at::NoGradGuard no_grad;
  for (std::size_t g = 0; g < flat_groups_.size(); ++g) take_own_chunks(g, masters_->buffers()[g]);
}

}  // namespace deepspeed::zero
