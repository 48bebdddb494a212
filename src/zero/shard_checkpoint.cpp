#include "src/zero/shard_checkpoint.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "deepspeed/checkpoint/files.h"
#include "deepspeed/util/error.h"
#include "deepspeed/util/strings.h"
#include "deepspeed/zero/reshard.h"

namespace deepspeed::zero {

using util::cat;

namespace {

/// How the checkpoint's shards were cut, checked against the layout loading them.
struct SavedCut {
  int ranks = 1;
  std::int64_t bucket_numel = 0;
  std::int64_t alignment = kAlignment;
  bool same_as(const ShardLayout& layout) const {
    return ranks == layout.world_size && bucket_numel == layout.bucket_numel && alignment == kAlignment;
  }
};

SavedCut read_cut(checkpoint::LoadSource& source, const ShardLayout& layout) {
  SavedCut cut;
  cut.ranks = static_cast<int>(source.rank_entry(0, "partition_count").toInt());
  const auto saved = source.rank_entry(0, "layout").toGenericDict();
  const std::string& file = source.rank_file(0);
  cut.bucket_numel = checkpoint::entry(saved, "bucket_numel", file).toInt();
  cut.alignment = checkpoint::entry(saved, "alignment", file).toInt();
  const auto numels = checkpoint::entry(saved, "group_numels", file).toList();
  if (numels.size() != layout.groups.size()) {
    throw UsageError(cat("load_checkpoint: '", source.dir(), "' has ", numels.size(), " parameter groups, the model ",
                         layout.groups.size()));
  }
  for (std::size_t g = 0; g < layout.groups.size(); ++g) {
    if (numels.get(g).toIntVector() != layout.groups[g]->numels()) {
      throw UsageError(cat("load_checkpoint: '", source.dir(), "' was saved from a model with other parameter sizes"));
    }
  }
  return cut;
}

/// Every saved rank's piece of group g → this rank's piece under the current layout.
at::Tensor recut(const std::vector<at::Tensor>& pieces, const SavedCut& cut, const ShardLayout& layout, std::size_t g) {
  const auto numels = layout.groups[g]->numels();
  const auto old_plan = plan_group(numels, {cut.bucket_numel, cut.alignment, cut.ranks});
  return shard_of(unshard(pieces, old_plan, numels), layout.groups[g]->plan, layout.rank);
}

c10::impl::GenericDict optimizer_states(checkpoint::LoadSource& source, int rank) {
  const auto base = source.rank_entry(rank, "base_optimizer_state").toGenericDict();
  return checkpoint::entry(base, "state", source.rank_file(rank)).toGenericDict();
}

}  // namespace

ShardLayout shard_layout(const MasterWeights& masters, std::int64_t bucket_numel, int stage, const comm::Communicator& comm) {
  return ShardLayout{masters.groups(), masters.optimizer_indices(), bucket_numel, stage, comm.rank(), comm.world_size()};
}

void save_master_shards(checkpoint::SaveTarget& target, const ShardLayout& layout, const std::vector<at::Tensor>& masters) {
  auto& states = target.rank_states;
  states.insert("zero_stage", static_cast<std::int64_t>(layout.stage));
  states.insert("partition_count", static_cast<std::int64_t>(layout.world_size));
  states.insert("fp32_flat_groups", checkpoint::cpu_copies(masters));
  checkpoint::Dict cut = checkpoint::new_dict();
  cut.insert("bucket_numel", layout.bucket_numel);
  cut.insert("alignment", kAlignment);
  c10::impl::GenericList numels(c10::AnyType::get());
  for (const auto* g : layout.groups) numels.push_back(c10::List<std::int64_t>(g->numels()));
  cut.insert("group_numels", numels);
  states.insert("layout", cut);
}

void load_master_shards(checkpoint::LoadSource& source, const ShardLayout& layout, std::vector<at::Tensor>& masters) {
  const SavedCut cut = read_cut(source, layout);
  at::NoGradGuard no_grad;
  if (cut.same_as(layout)) {
    const auto saved = source.rank_entry(layout.rank, "fp32_flat_groups").toList();
    for (std::size_t g = 0; g < masters.size(); ++g) masters[g].copy_(saved.get(g).toTensor());
    return;
  }
  for (std::size_t g = 0; g < masters.size(); ++g) {
    std::vector<at::Tensor> pieces;
    for (int r = 0; r < cut.ranks; ++r) pieces.push_back(source.rank_entry(r, "fp32_flat_groups").toList().get(g).toTensor());
    masters[g].copy_(recut(pieces, cut, layout, g));
  }
}

c10::IValue load_optimizer_shards(checkpoint::LoadSource& source, const ShardLayout& layout) {
  const SavedCut cut = read_cut(source, layout);
  if (cut.same_as(layout)) return source.rank_entry(layout.rank, "base_optimizer_state");
  // Another world size or bucket size: each master's state tensors are re-cut like the master; scalars
  // ("step") are the same on every rank.
  auto base = source.rank_entry(0, "base_optimizer_state").toGenericDict().copy();
  const auto states0 = optimizer_states(source, 0);
  c10::impl::GenericDict state(c10::IntType::get(), c10::AnyType::get());
  for (std::size_t g = 0; g < layout.groups.size(); ++g) {
    const auto index = static_cast<std::int64_t>(layout.optimizer_indices.at(g));
    if (!states0.contains(index)) continue;  // no optimizer step was taken before the save
    c10::Dict<std::string, at::Tensor> entry;
    for (const auto& item : states0.at(index).toGenericDict()) {
      const std::string name = item.key().toStringRef();
      if (item.value().toTensor().dim() == 0) {
        entry.insert(name, item.value().toTensor());
        continue;
      }
      std::vector<at::Tensor> pieces;
      for (int r = 0; r < cut.ranks; ++r) {
        pieces.push_back(optimizer_states(source, r).at(index).toGenericDict().at(name).toTensor());
      }
      entry.insert(name, recut(pieces, cut, layout, g));
    }
    state.insert(index, entry);
  }
  base.insert_or_assign("state", state);
  return base;
}

}  // namespace deepspeed::zero
