// Loading ZeRO stage 1–2 shards: the fast path reads this rank's own file; a checkpoint from another number of
// ranks (or another bucket size) is reassembled per parameter and re-cut for the current layout.
#include <filesystem>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "deepspeed/checkpoint/files.h"
#include "deepspeed/checkpoint/reshard.h"
#include "deepspeed/util/strings.h"
#include "src/engine/engine_impl.h"

namespace deepspeed {

using util::cat;
namespace ckpt = checkpoint;

namespace {

struct ShardFile {
  std::string path;
  c10::impl::GenericDict inner;
};

ShardFile read_shard(const std::string& dir, int rank) {
  const std::string path = ckpt::find_optim_states(dir, rank);
  return ShardFile{path, ckpt::entry(ckpt::load_ivalue(path).toGenericDict(), "optimizer_state_dict", path).toGenericDict()};
}

std::size_t flat_index(const optim::Optimizer& opt, std::pair<std::size_t, std::size_t> slot) {
  std::size_t index = slot.second;
  for (std::size_t g = 0; g < slot.first; ++g) index += opt.param_groups()[g].params.size();
  return index;
}

}  // namespace

void load_zero_shards(EngineImpl& e, const std::string& dir) {
  const int rank = e.comm->rank();
  const ShardFile first = read_shard(dir, 0);
  const int saved_ranks = static_cast<int>(ckpt::entry(first.inner, "partition_count", first.path).toInt());
  const auto layout = ckpt::entry(first.inner, "layout", first.path).toGenericDict();
  const std::int64_t saved_bucket = ckpt::entry(layout, "bucket_numel", first.path).toInt();
  const std::int64_t saved_alignment = ckpt::entry(layout, "alignment", first.path).toInt();
  const auto saved_numels = ckpt::entry(layout, "group_numels", first.path).toList();
  const auto groups = e.layout_groups();
  if (saved_numels.size() != groups.size()) {
    throw UsageError(cat("load_checkpoint: '", dir, "' has ", saved_numels.size(), " parameter groups, the model ",
                         groups.size()));
  }
  for (std::size_t g = 0; g < groups.size(); ++g) {
    if (saved_numels.get(g).toIntVector() != groups[g]->numels()) {
      throw UsageError(cat("load_checkpoint: '", dir, "' was saved from a model with other parameter sizes"));
    }
  }
  at::NoGradGuard no_grad;
  const bool same_layout = saved_ranks == e.comm->world_size() && saved_bucket == e.bucket_numel &&
                           saved_alignment == e.alignment;
  if (same_layout) {
    const ShardFile own = rank == 0 ? first : read_shard(dir, rank);
    e.optimizer->load_state_dict(ckpt::entry(own.inner, "base_optimizer_state", own.path));
    const auto masters = ckpt::entry(own.inner, "fp32_flat_groups", own.path).toList();
    for (std::size_t g = 0; g < groups.size(); ++g) e.master->masters()[g].copy_(masters.get(g).toTensor());
    return;
  }

  // Another world size or bucket size: every rank reads every shard and cuts out its own.
  std::vector<ShardFile> files;
  for (int r = 0; r < saved_ranks; ++r) files.push_back(r == 0 ? first : read_shard(dir, r));
  auto base = ckpt::entry(first.inner, "base_optimizer_state", first.path).toGenericDict().copy();
  c10::impl::GenericDict state(c10::IntType::get(), c10::AnyType::get());
  const auto slots = e.master->shard_slots();
  for (std::size_t g = 0; g < groups.size(); ++g) {
    const auto numels = groups[g]->numels();
    const auto old_plan = zero::plan_group(numels, {saved_bucket, saved_alignment, saved_ranks});
    const auto& new_plan = groups[g]->plan;
    const auto recut = [&](const std::vector<at::Tensor>& shards) {
      return ckpt::shard_of(ckpt::unshard(shards, old_plan, numels), new_plan, rank);
    };
    std::vector<at::Tensor> master_shards;
    for (const auto& f : files) master_shards.push_back(ckpt::entry(f.inner, "fp32_flat_groups", f.path).toList().get(g).toTensor());
    e.master->masters()[g].copy_(recut(master_shards));

    const auto index = static_cast<std::int64_t>(flat_index(*e.optimizer, slots[g]));
    const auto states0 = ckpt::entry(ckpt::entry(first.inner, "base_optimizer_state", first.path).toGenericDict(), "state",
                               first.path).toGenericDict();
    if (!states0.contains(index)) continue;  // no optimizer step was taken before the save
    c10::Dict<std::string, at::Tensor> entry;
    for (const auto& item : states0.at(index).toGenericDict()) {
      const std::string name = item.key().toStringRef();
      if (item.value().toTensor().dim() == 0) {  // "step": the same on every rank
        entry.insert(name, item.value().toTensor());
        continue;
      }
      std::vector<at::Tensor> shards;
      for (const auto& f : files) {
        const auto s = ckpt::entry(ckpt::entry(f.inner, "base_optimizer_state", f.path).toGenericDict(), "state", f.path);
        shards.push_back(s.toGenericDict().at(index).toGenericDict().at(name).toTensor());
      }
      entry.insert(name, recut(shards));
    }
    state.insert(index, entry);
  }
  base.insert_or_assign("state", state);
  e.optimizer->load_state_dict(base);
}

}  // namespace deepspeed
