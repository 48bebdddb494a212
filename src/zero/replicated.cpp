// Stage 0: the replicated layout.
#include <unordered_map>
#include <utility>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "deepspeed/checkpoint/files.h"
#include "deepspeed/util/error.h"
#include "deepspeed/util/logging.h"
#include "deepspeed/util/strings.h"
#include "deepspeed/zero/init.h"
#include "src/zero/strategies.h"

namespace deepspeed::zero {

ReplicatedStrategy::ReplicatedStrategy(LayoutInputs in, bool reference_reducer)
    : Strategy(0, in.bucket_numel, in.module, in.comm), num_optimizer_groups_(in.param_groups.size()) {
  materialize_presharded(module_->parameters(), comm_->device(), in.model_dtype);
  flat_groups_ = build_flat_groups(in.param_groups, FlatOptions{bucket_numel_, kAlignment, /*world_size=*/1});
  if (reference_reducer) {
    std::vector<at::Tensor> params;
    for (const auto* g : groups()) params.insert(params.end(), g->params.begin(), g->params.end());
    reducer_ = std::make_unique<NaiveAllReduce>(std::move(params), comm_, in.reducer);
  } else {
    reducer_ = std::make_unique<BucketReducer>(groups(), comm_, in.reducer, in.placement);
  }
  // A 16-bit model is updated through fp32 copies; an fp32 model is its own master. The layout has one rank,
  // so a group's "shard" is its whole flat buffer.
  bool copies = false;
  for (const auto* g : groups()) copies = copies || g->param_flat.scalar_type() != at::kFloat;
  if (copies) {
    std::vector<ShardBuffer> masters;
    at::NoGradGuard no_grad;
    for (const auto* g : groups()) {
      masters.push_back(in.placement.shard_buffer(*g, StateKind::kMasterWeights, at::kFloat));
      masters.back().copy_from(g->param_flat);
    }
    masters_.emplace(groups(), std::move(masters), MasterWeights::View::kPerParameter);
  }
  if (in.step_behind_forward) behind_ = plan_step_behind_forward();
}

ReplicatedStrategy::~ReplicatedStrategy() = default;

std::unique_ptr<StepBehindForward> ReplicatedStrategy::plan_step_behind_forward() {
  std::vector<Unit> units = Unit::claim(*module_);
  if (units.empty()) {
    log::print_rank0("DS_STEP_BEHIND_FORWARD=1: the model declares no ZeRO-3 units (deepspeed::zero::Unit), so "
                     "the optimizer step runs whole at the step, as without the switch");
    return nullptr;
  }
  // A parameter belongs to the first unit whose module holds it (as at stage 3); the others to the root, 0.
  std::unordered_map<const void*, std::size_t> unit_of_param;
  for (std::size_t u = 0; u < units.size(); ++u) {
    for (const auto& p : units[u].module()->parameters()) unit_of_param.emplace(p.unsafeGetTensorImpl(), u + 1);
  }
  // In optimizer_params()' order: each flat group's parameters, appended to its optimizer group.
  std::vector<std::vector<std::size_t>> unit_of(num_optimizer_groups_);
  for (const auto* g : groups()) {
    for (const auto& p : g->params) {
      const auto it = unit_of_param.find(p.unsafeGetTensorImpl());
      unit_of.at(g->optimizer_group).push_back(it == unit_of_param.end() ? 0 : it->second);
    }
  }
  const std::size_t num_units = units.size();
  auto behind = std::make_unique<StepBehindForward>(comm_->device(), std::move(units),
                                                    plan_step_parts(unit_of, num_units));
  log::print_rank0(util::cat("DS_STEP_BEHIND_FORWARD=1: the optimizer step runs in ", behind->num_parts(),
                             " parts (the parameters outside the model's ", num_units, " units first, then unit by "
                             "unit) ",
                             behind->has_streams() ? "on a side stream, each unit's forward waiting for its own part"
                                                   : "in order at the step (no side stream on this device)"));
  return behind;
}

bool ReplicatedStrategy::step_behind_forward(const StepPart& step_part) {
  if (!behind_) return false;
  if (masters_ && !optimizer_writes_copies_) {
    // The weights would take the masters' values only after the whole step (after_optimizer_step's copy).
    if (!std::exchange(refused_behind_, true)) {
      log::print_rank0("DS_STEP_BEHIND_FORWARD=1: the optimizer does not write the model's 16-bit weights itself, "
                       "so the step runs whole at the step");
    }
    return false;
  }
  std::vector<at::Tensor> grads;
  for (const auto& group : optimizer_params()) {
    for (const auto& p : group) grads.push_back(p.grad());
  }
  if (behind_->launch(step_part, grads)) return true;
  if (!std::exchange(refused_behind_, true)) {
    log::print_rank0("DS_STEP_BEHIND_FORWARD=1: the optimizer cannot step in parts, so the step runs whole at the "
                     "step");
  }
  return false;
}

std::vector<FlatGroup*> ReplicatedStrategy::groups() const {
  std::vector<FlatGroup*> out;
  for (const auto& g : flat_groups_) out.push_back(g.get());
  return out;
}

std::vector<std::vector<at::Tensor>> ReplicatedStrategy::optimizer_params() const {
  if (masters_) return masters_->optimizer_params(num_optimizer_groups_);
  std::vector<std::vector<at::Tensor>> out(num_optimizer_groups_);
  for (const auto* g : groups()) {
    auto& dest = out.at(g->optimizer_group);
    dest.insert(dest.end(), g->params.begin(), g->params.end());
  }
  return out;
}

std::vector<at::Tensor> ReplicatedStrategy::optimizer_gradients() {
  // Without copies the optimizer reads the parameters' own .grad(), which are views of the reduced buffers.
  if (!masters_) return reducer_->gradients();
  if (auto kept = reducer_->gradients_as_they_are(); !kept.empty()) {
    return masters_->attach_parameter_gradients(kept, {.device_16bit = optimizer_upcasts_});
  }
  std::vector<ShardBuffer> reduced;
  const auto full = reducer_->gradients();
  for (std::size_t g = 0; g < flat_groups_.size(); ++g) reduced.push_back(ShardBuffer::whole(*flat_groups_[g], full[g]));
  return masters_->attach_gradients(reduced, {.device_16bit = optimizer_upcasts_});
}

std::vector<std::vector<at::Tensor>> ReplicatedStrategy::model_copies() const {
  if (!masters_) return {};
  // In optimizer_params()' order: each flat group's parameters, appended to its optimizer group.
  std::vector<std::vector<at::Tensor>> out(num_optimizer_groups_);
  for (const auto* g : groups()) {
    auto& dest = out.at(g->optimizer_group);
    for (std::size_t i = 0; i < g->params.size(); ++i) dest.push_back(g->view_of(g->param_flat, i));
  }
  return out;
}

void ReplicatedStrategy::after_optimizer_step() {
  if (!masters_ || optimizer_writes_copies_) return;
  at::NoGradGuard no_grad;
  for (std::size_t g = 0; g < flat_groups_.size(); ++g) flat_groups_[g]->param_flat.copy_(masters_->buffers()[g].pieces()[0].tensor);
}

void ReplicatedStrategy::end_step() {
  if (masters_) masters_->release_gradients();
  reducer_->zero_grad();
  if (behind_) behind_->close();
}

void ReplicatedStrategy::adopt_parameter_values(std::size_t) {
  finish_step();
  if (!masters_) return;
  at::NoGradGuard no_grad;
  for (std::size_t g = 0; g < flat_groups_.size(); ++g) masters_->buffers()[g].copy_from(flat_groups_[g]->param_flat);
}

void ReplicatedStrategy::save(checkpoint::SaveTarget& target) {
  finish_step();
  save_layout(target, groups(), /*layout_world_size=*/1);
  if (!target.model_states_written) return;
  c10::impl::GenericList masters(c10::AnyType::get());
  if (masters_) {
    for (const auto& m : masters_->buffers()) masters.push_back(m.to_cpu());
  }
  checkpoint::section(target.model_states, "optimizer").insert("fp32_flat_groups", masters);
}

void ReplicatedStrategy::load(checkpoint::LoadSource& source, const checkpoint::LoadOptions& options) {
  finish_step();
  if (!options.restores_optimizer()) return;  // the masters took the loaded weights already
  check_saved_stage(source, [](int saved) { return saved == 0; });
  if (!masters_) return;
  const auto optimizer = source.model_entry("optimizer").toGenericDict();
  const auto saved = checkpoint::entry(optimizer, "fp32_flat_groups", source.model_file()).toList();
  if (saved.size() != masters_->buffers().size()) {
    throw UsageError(util::cat("load_checkpoint: '", source.model_file(), "' holds no fp32 master weights for this "
                               "precision (saved in fp32?); load_optimizer_states=false starts from the weights"));
  }
  at::NoGradGuard no_grad;
  for (std::size_t g = 0; g < saved.size(); ++g) masters_->buffers()[g].copy_from(saved.get(g).toTensor());
}

void ReplicatedStrategy::save_optimizer_state(checkpoint::SaveTarget& target,
                                              const std::function<c10::IValue()>& state) const {
  finish_step();
  if (target.model_states_written) checkpoint::section(target.model_states, "optimizer").insert("optimizer_state_dict", state());
}

c10::IValue ReplicatedStrategy::load_optimizer_state(checkpoint::LoadSource& source) {
  const auto optimizer = source.model_entry("optimizer").toGenericDict();
  return checkpoint::entry(optimizer, "optimizer_state_dict", source.model_file());
}

}  // namespace deepspeed::zero
