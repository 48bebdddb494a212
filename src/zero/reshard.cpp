#include "deepspeed/zero/reshard.h"

#include <ATen/ATen.h>

#include "deepspeed/util/error.h"
#include "deepspeed/util/strings.h"

namespace deepspeed::zero {

std::vector<at::Tensor> unshard(const std::vector<at::Tensor>& shards, const BucketPlan& plan,
                                const std::vector<std::int64_t>& numels) {
  if (static_cast<int>(shards.size()) != plan.world_size) {
    throw UsageError(util::cat("checkpoint: expected ", plan.world_size, " shards, found ", shards.size()));
  }
  for (const auto& s : shards) {
    if (s.numel() != plan.shard_numel) {
      throw UsageError(util::cat("checkpoint: a shard has ", s.numel(), " elements, the layout expects ",
                                 plan.shard_numel, " (different model or reduce_bucket_size?)"));
    }
  }
  std::vector<at::Tensor> full;
  for (std::size_t i = 0; i < numels.size(); ++i) {
    at::Tensor t = at::empty({numels[i]}, shards[0].options());
    for (int r = 0; r < plan.world_size; ++r) {
      const auto part = plan.owned_part(i, numels[i], r);
      if (part.end == part.begin) continue;
      int owner = 0;
      const auto pos = plan.shard_position(part.begin, &owner);
      t.narrow(0, part.begin - plan.offset[i], part.end - part.begin)
          .copy_(shards[static_cast<std::size_t>(r)].narrow(0, pos, part.end - part.begin));
    }
    full.push_back(t);
  }
  return full;
}

at::Tensor shard_of(const std::vector<at::Tensor>& full, const BucketPlan& plan, int rank) {
  at::Tensor shard = at::zeros({plan.shard_numel}, full.at(0).options());
  for (std::size_t i = 0; i < full.size(); ++i) {
    const auto numel = full[i].numel();
    const auto part = plan.owned_part(i, numel, rank);
    if (part.end == part.begin) continue;
    int owner = 0;
    const auto pos = plan.shard_position(part.begin, &owner);
    shard.narrow(0, pos, part.end - part.begin)
        .copy_(full[i].reshape(-1).narrow(0, part.begin - plan.offset[i], part.end - part.begin));
  }
  return shard;
}

}  // namespace deepspeed::zero
