#include "deepspeed/zero/consolidate.h"

#include <filesystem>
#include <map>

#include <ATen/ATen.h>
#include <c10/util/accumulate.h>

#include "deepspeed/checkpoint/files.h"
#include "deepspeed/util/error.h"
#include "deepspeed/util/strings.h"
#include "deepspeed/zero/flat_group.h"
#include "deepspeed/zero/reshard.h"

namespace deepspeed::zero {

using checkpoint::entry;
using checkpoint::find_optim_states;
using checkpoint::load_ivalue;
using checkpoint::model_states_name;
using checkpoint::read_latest;
using checkpoint::resolve_tag_dir;

using util::cat;

namespace {

struct GroupShapes {
  std::vector<std::string> names;
  std::vector<std::vector<std::int64_t>> shapes;
  std::vector<std::int64_t> numels;
};

std::vector<GroupShapes> read_shapes(const c10::impl::GenericDict& state, const std::string& file) {
  std::vector<GroupShapes> groups;
  for (const auto& g : entry(state, "param_shapes", file).toList()) {
    GroupShapes shapes;
    for (const auto& item : g.get().toGenericDict()) {
      shapes.names.push_back(item.key().toStringRef());
      shapes.shapes.push_back(item.value().toIntVector());
      shapes.numels.push_back(static_cast<std::int64_t>(c10::multiply_integers(shapes.shapes.back())));
    }
    groups.push_back(std::move(shapes));
  }
  return groups;
}

}  // namespace

std::vector<std::pair<std::string, at::Tensor>> fp32_state_dict(const std::string& checkpoint_dir,
                                                                std::optional<std::string> tag) {
  if (!tag) tag = read_latest(checkpoint_dir);
  if (!tag) throw UsageError(cat("consolidate: no 'latest' file in '", checkpoint_dir, "'; pass a tag"));
  const std::string dir = resolve_tag_dir(checkpoint_dir, *tag);
  const std::string model_file = (std::filesystem::path(dir) / model_states_name()).string();
  const auto state = load_ivalue(model_file).toGenericDict();
  const auto module = entry(state, "module", model_file).toGenericDict();
  const auto layout = entry(state, "layout", model_file).toGenericDict();
  const std::int64_t bucket = entry(layout, "bucket_numel", model_file).toInt();
  const std::int64_t alignment = entry(layout, "alignment", model_file).toInt();
  const auto groups = read_shapes(state, model_file);

  // fp32 master flats, per group: the replicated layout keeps each whole in the model-states file (none when
  // the model trained in fp32), the sharded layouts one shard per rank in the ranks' files. A whole flat is
  // the single shard of a one-rank layout, so both reassemble the same way.
  std::vector<std::vector<at::Tensor>> shards(groups.size());
  int world = 1;
  if (state.contains("optimizer")) {
    const auto masters = entry(entry(state, "optimizer", model_file).toGenericDict(), "fp32_flat_groups", model_file).toList();
    if (masters.size() == groups.size()) {
      for (std::size_t g = 0; g < groups.size(); ++g) shards[g].push_back(masters.get(g).toTensor());
    }
  } else {
    world = static_cast<int>(entry(layout, "world_size", model_file).toInt());
    for (int r = 0; r < world; ++r) {
      const std::string file = find_optim_states(dir, r);
      const auto inner = entry(load_ivalue(file).toGenericDict(), "optimizer_state_dict", file).toGenericDict();
      const auto masters = entry(inner, "fp32_flat_groups", file).toList();
      if (masters.size() != groups.size()) {
        throw UsageError(cat("consolidate: '", file, "' has ", masters.size(), " groups, the model states ", groups.size()));
      }
      for (std::size_t g = 0; g < groups.size(); ++g) shards[g].push_back(masters.get(g).toTensor());
    }
  }

  std::map<std::string, at::Tensor> masters;  // name → fp32 tensor, from the flats
  for (std::size_t g = 0; g < groups.size(); ++g) {
    if (shards[g].empty()) continue;
    const auto full = unshard(shards[g], plan_group(groups[g].numels, {bucket, alignment, world}), groups[g].numels);
    for (std::size_t i = 0; i < full.size(); ++i) {
      masters[groups[g].names[i]] = full[i].reshape(groups[g].shapes[i]).to(at::kFloat).clone();
    }
  }
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& item : module) {
    const std::string name = item.key().toStringRef();
    const auto it = masters.find(name);
    // Parameters the optimizer did not own (frozen) and buffers come from the saved module weights.
    at::Tensor value = it != masters.end() ? it->second : item.value().toTensor();
    out.emplace_back(name, value.is_floating_point() ? value.to(at::kFloat) : value);
  }
  return out;
}

}  // namespace deepspeed::zero
