#include "src/zero/shard_checkpoint.h"

#include <map>

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

const std::vector<FlatGroup*>& groups_of(const ShardLayout& layout) { return layout.masters->groups(); }

SavedCut read_cut(checkpoint::LoadSource& source, const ShardLayout& layout) {
  SavedCut cut;
  cut.ranks = static_cast<int>(source.rank_entry(0, "partition_count").toInt());
  const auto saved = source.rank_entry(0, "layout").toGenericDict();
  const std::string& file = source.rank_file(0);
  cut.bucket_numel = checkpoint::entry(saved, "bucket_numel", file).toInt();
  cut.alignment = checkpoint::entry(saved, "alignment", file).toInt();
  const auto numels = checkpoint::entry(saved, "group_numels", file).toList();
  const auto& groups = groups_of(layout);
  if (numels.size() != groups.size()) {
    throw UsageError(cat("load_checkpoint: '", source.dir(), "' has ", numels.size(), " parameter groups, the model ",
                         groups.size()));
  }
  for (std::size_t g = 0; g < groups.size(); ++g) {
    if (numels.get(g).toIntVector() != groups[g]->numels()) {
      throw UsageError(cat("load_checkpoint: '", source.dir(), "' was saved from a model with other parameter sizes"));
    }
  }
  return cut;
}

/// Every saved rank's piece of group g → this rank's shard under the current layout.
at::Tensor recut(const std::vector<at::Tensor>& pieces, const SavedCut& cut, const ShardLayout& layout, std::size_t g) {
  const FlatGroup& group = *groups_of(layout)[g];
  const auto numels = group.numels();
  const auto old_plan = plan_group(numels, {cut.bucket_numel, cut.alignment, cut.ranks});
  return shard_of(unshard(pieces, old_plan, numels), group.plan, layout.rank);
}

c10::impl::GenericDict state_entries(const c10::IValue& optimizer_state, const std::string& file) {
  return checkpoint::entry(optimizer_state.toGenericDict(), "state", file).toGenericDict();
}

// The index each group's single entry has in the saved state: groups counted across the optimizer's param
// groups in order, one tensor each (what MasterWeights::optimizer_indices gives when no group is split).
std::vector<std::int64_t> joined_indices(const ShardLayout& layout) {
  const auto& groups = groups_of(layout);
  std::vector<std::int64_t> first;
  for (const auto* g : groups) {
    if (first.size() <= g->optimizer_group) first.resize(g->optimizer_group + 1, 0);
  }
  for (const auto* g : groups) {
    for (std::size_t og = g->optimizer_group + 1; og < first.size(); ++og) ++first[og];
  }
  std::vector<std::int64_t> out;
  for (const auto* g : groups) out.push_back(first[g->optimizer_group]++);
  return out;
}

bool has_split_groups(const ShardLayout& layout) {
  for (const auto& m : layout.masters->buffers()) {
    if (m.pieces().size() > 1) return true;
  }
  return false;
}

// Renumbers the "params" lists of param_groups: `count[og]` entries for optimizer group og.
c10::impl::GenericList renumbered_groups(const c10::impl::GenericList& groups, const std::vector<std::int64_t>& count) {
  c10::impl::GenericList out(c10::AnyType::get());
  std::int64_t next = 0;
  for (std::size_t og = 0; og < groups.size(); ++og) {
    auto entry = groups.get(og).toGenericDict().copy();
    c10::List<std::int64_t> params;
    for (std::int64_t i = 0; i < count.at(og); ++i) params.push_back(next++);
    entry.insert_or_assign("params", params);
    out.push_back(entry);
  }
  return out;
}

std::vector<std::int64_t> tensors_per_optimizer_group(const ShardLayout& layout, bool joined) {
  std::vector<std::int64_t> count;
  const auto& groups = groups_of(layout);
  for (std::size_t g = 0; g < groups.size(); ++g) {
    const std::size_t og = groups[g]->optimizer_group;
    if (count.size() <= og) count.resize(og + 1, 0);
    count[og] += joined ? 1 : static_cast<std::int64_t>(layout.masters->buffers()[g].pieces().size());
  }
  return count;
}

}  // namespace

void save_master_shards(checkpoint::SaveTarget& target, const ShardLayout& layout) {
  auto& states = target.rank_states;
  states.insert("zero_stage", static_cast<std::int64_t>(layout.stage));
  states.insert("partition_count", static_cast<std::int64_t>(layout.world_size));
  c10::impl::GenericList masters(c10::AnyType::get());
  for (const auto& m : layout.masters->buffers()) masters.push_back(m.to_cpu());
  states.insert("fp32_flat_groups", masters);
  checkpoint::Dict cut = checkpoint::new_dict();
  cut.insert("bucket_numel", layout.bucket_numel);
  cut.insert("alignment", kAlignment);
  c10::impl::GenericList numels(c10::AnyType::get());
  for (const auto* g : groups_of(layout)) numels.push_back(c10::List<std::int64_t>(g->numels()));
  cut.insert("group_numels", numels);
  states.insert("layout", cut);
}

void load_master_shards(checkpoint::LoadSource& source, const ShardLayout& layout) {
  const SavedCut cut = read_cut(source, layout);
  const auto& masters = layout.masters->buffers();
  at::NoGradGuard no_grad;
  if (cut.same_as(layout)) {
    const auto saved = source.rank_entry(layout.rank, "fp32_flat_groups").toList();
    for (std::size_t g = 0; g < masters.size(); ++g) masters[g].copy_from(saved.get(g).toTensor());
    return;
  }
  for (std::size_t g = 0; g < masters.size(); ++g) {
    std::vector<at::Tensor> pieces;
    for (int r = 0; r < cut.ranks; ++r) pieces.push_back(source.rank_entry(r, "fp32_flat_groups").toList().get(g).toTensor());
    masters[g].copy_from(recut(pieces, cut, layout, g));
  }
}

c10::IValue joined_optimizer_state(const c10::IValue& state, const ShardLayout& layout) {
  if (!has_split_groups(layout)) return state;
  const auto dict = state.toGenericDict();
  const auto entries = dict.at("state").toGenericDict();
  const auto pieces = layout.masters->optimizer_indices();
  const auto joined = joined_indices(layout);
  c10::impl::GenericDict out_entries(c10::IntType::get(), c10::AnyType::get());
  for (std::size_t g = 0; g < pieces.size(); ++g) {
    if (!entries.contains(static_cast<std::int64_t>(pieces[g][0]))) continue;  // no step taken yet
    c10::Dict<std::string, at::Tensor> entry;
    for (const auto& item : entries.at(static_cast<std::int64_t>(pieces[g][0])).toGenericDict()) {
      const std::string name = item.key().toStringRef();
      if (item.value().toTensor().dim() == 0) {  // "step": the same for every piece
        entry.insert(name, item.value().toTensor());
        continue;
      }
      std::vector<at::Tensor> parts;
      for (const auto index : pieces[g]) {
        parts.push_back(entries.at(static_cast<std::int64_t>(index)).toGenericDict().at(name).toTensor());
      }
      entry.insert(name, at::cat(parts));
    }
    out_entries.insert(joined[g], entry);
  }
  auto out = dict.copy();
  out.insert_or_assign("state", out_entries);
  out.insert_or_assign("param_groups",
                       renumbered_groups(dict.at("param_groups").toList(), tensors_per_optimizer_group(layout, true)));
  return out;
}

c10::IValue load_optimizer_shards(checkpoint::LoadSource& source, const ShardLayout& layout) {
  const SavedCut cut = read_cut(source, layout);
  const auto joined = joined_indices(layout);
  const auto base = source.rank_entry(0, "base_optimizer_state").toGenericDict();
  // Per group, the saved entry for this rank's shard: its own file's when the cut is the same, else every
  // rank's re-cut (scalars, "step", are the same on every rank).
  auto entry_of = [&](std::size_t g) -> std::optional<c10::Dict<std::string, at::Tensor>> {
    const auto index = joined[g];
    const auto own = state_entries(source.rank_entry(cut.same_as(layout) ? layout.rank : 0, "base_optimizer_state"),
                                   source.rank_file(0));
    if (!own.contains(index)) return std::nullopt;  // no optimizer step was taken before the save
    c10::Dict<std::string, at::Tensor> entry;
    for (const auto& item : own.at(index).toGenericDict()) {
      const std::string name = item.key().toStringRef();
      const at::Tensor t = item.value().toTensor();
      if (cut.same_as(layout) || t.dim() == 0) {
        entry.insert(name, t);
        continue;
      }
      std::vector<at::Tensor> pieces;
      for (int r = 0; r < cut.ranks; ++r) {
        const auto states = state_entries(source.rank_entry(r, "base_optimizer_state"), source.rank_file(r));
        pieces.push_back(states.at(index).toGenericDict().at(name).toTensor());
      }
      entry.insert(name, recut(pieces, cut, layout, g));
    }
    return entry;
  };
  // Then split at this layout's pieces.
  const auto piece_indices = layout.masters->optimizer_indices();
  c10::impl::GenericDict state(c10::IntType::get(), c10::AnyType::get());
  for (std::size_t g = 0; g < piece_indices.size(); ++g) {
    const auto entry = entry_of(g);
    if (!entry) continue;
    const auto& pieces = layout.masters->buffers()[g].pieces();
    for (std::size_t p = 0; p < pieces.size(); ++p) {
      c10::Dict<std::string, at::Tensor> part;
      for (const auto& item : *entry) {
        const at::Tensor& t = item.value();
        part.insert(item.key(), t.dim() == 0 ? t : t.narrow(0, pieces[p].begin, pieces[p].tensor.numel()));
      }
      state.insert(static_cast<std::int64_t>(piece_indices[g][p]), part);
    }
  }
  auto out = base.copy();
  out.insert_or_assign("state", state);
  out.insert_or_assign("param_groups",
                       renumbered_groups(base.at("param_groups").toList(), tensors_per_optimizer_group(layout, false)));
  return out;
}

}  // namespace deepspeed::zero
