#pragma once
// Internal: the checkpoint of a sharded layout (stages 1–3). Each rank's optimizer-states file holds its fp32
// master shards, the optimizer state over them, and the layout that cut them (bucket size, alignment, world
// size, parameter sizes per group). A checkpoint written under another world size or bucket size is re-cut:
// every rank reads every file, reassembles each parameter and cuts out its own shard (reshard.h).
#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>

#include "deepspeed/checkpoint/state.h"
#include "deepspeed/comm/communicator.h"
#include "deepspeed/zero/flat_group.h"
#include "deepspeed/zero/master_weights.h"

namespace deepspeed::zero {

struct ShardLayout {
  std::vector<FlatGroup*> groups;              ///< in the masters' order
  std::vector<std::size_t> optimizer_indices;  ///< per group: its master's key in the optimizer's state dict
  std::int64_t bucket_numel = 0;
  int stage = 0;
  int rank = 0;
  int world_size = 1;
};

/// The layout of `masters` (kPerGroup) on this communicator.
ShardLayout shard_layout(const MasterWeights& masters, std::int64_t bucket_numel, int stage, const comm::Communicator& comm);

/// This rank's entries: zero_stage, partition_count, fp32_flat_groups and layout.
void save_master_shards(checkpoint::SaveTarget& target, const ShardLayout& layout, const std::vector<at::Tensor>& masters);
/// Fills `masters` with this rank's shards. Throws UsageError when the checkpoint's groups or parameter sizes
/// differ from the layout's.
void load_master_shards(checkpoint::LoadSource& source, const ShardLayout& layout, std::vector<at::Tensor>& masters);
/// This rank's optimizer state dict (base_optimizer_state), re-cut when needed.
c10::IValue load_optimizer_shards(checkpoint::LoadSource& source, const ShardLayout& layout);

}  // namespace deepspeed::zero
