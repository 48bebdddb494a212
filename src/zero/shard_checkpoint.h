#pragma once
// Internal: the checkpoint of a sharded layout (stages 1–3). Each rank's optimizer-states file holds its fp32
// master shards, the optimizer state over them, and the layout that cut them (bucket size, alignment, world
// size, parameter sizes per group). A checkpoint written under another world size or bucket size is re-cut:
// every rank reads every file, reassembles each parameter and cuts out its own shard (reshard.h).
//
// What is written does not depend on where the state lived: a group whose master is split into a host and a
// device piece (offload_optimizer.ratio) is saved as one shard with one optimizer-state entry, so a checkpoint
// loads with or without offload, and with another ratio.
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
  const MasterWeights* masters = nullptr;
  std::int64_t bucket_numel = 0;
  int stage = 0;
  int rank = 0;
  int world_size = 1;
};

/// This rank's entries: zero_stage, partition_count, fp32_flat_groups and layout.
void save_master_shards(checkpoint::SaveTarget& target, const ShardLayout& layout);
/// Fills the masters with this rank's shards. Throws UsageError when the checkpoint's groups or parameter
/// sizes differ from the layout's.
void load_master_shards(checkpoint::LoadSource& source, const ShardLayout& layout);
/// The optimizer's state dict with one entry per group (its pieces' entries joined), as saved.
c10::IValue joined_optimizer_state(const c10::IValue& state, const ShardLayout& layout);
/// This rank's optimizer state dict for the layout's pieces (re-cut from another world size when needed).
c10::IValue load_optimizer_shards(checkpoint::LoadSource& source, const ShardLayout& layout);

}  // namespace deepspeed::zero
