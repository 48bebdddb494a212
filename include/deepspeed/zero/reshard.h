#pragma once
/// \file
/// Moving ZeRO shards between layouts: every rank's shard of a flat group → one full tensor per parameter →
/// the shard some rank owns under another world size or bucket size. Pure tensor arithmetic on BucketPlans, no
/// communication; used to load a checkpoint on a different number of ranks and to consolidate one into a single
/// state dict.

#include <vector>

#include <ATen/core/Tensor.h>

#include "deepspeed/zero/bucket_plan.h"

namespace deepspeed::zero {

/// Full per-parameter tensors (flattened, parameter i has numels[i] elements) from all ranks' shards, which
/// were laid out by `plan` (plan.world_size shards, in rank order).
std::vector<at::Tensor> unshard(const std::vector<at::Tensor>& shards, const BucketPlan& plan,
                                const std::vector<std::int64_t>& numels);

/// The shard `rank` owns under `plan`, cut from full per-parameter tensors (padding zero-filled).
at::Tensor shard_of(const std::vector<at::Tensor>& full, const BucketPlan& plan, int rank);

}  // namespace deepspeed::zero
