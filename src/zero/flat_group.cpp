#include "deepspeed/zero/flat_group.h"

#include <map>
#include <numeric>
#include <tuple>

#include <ATen/ATen.h>
#include <c10/util/accumulate.h>
#include <c10/core/GradMode.h>

namespace deepspeed::zero {

at::Tensor FlatGroup::view_of(const at::Tensor& flat, std::size_t i) const {
  const auto numel = c10::multiply_integers(shapes[i]);
  return flat.narrow(0, plan.offset[i], static_cast<std::int64_t>(numel)).view(shapes[i]);
}

at::Tensor FlatGroup::bucket(const at::Tensor& flat, std::size_t b) const {
  return flat.narrow(0, plan.buckets[b].offset, plan.buckets[b].numel);
}

at::Tensor FlatGroup::chunk_in_full(const at::Tensor& flat, std::size_t b, int rank) const {
  const auto& bk = plan.buckets[b];
  return flat.narrow(0, bk.offset + rank * bk.chunk, bk.chunk);
}

at::Tensor FlatGroup::chunk_in_shard(const at::Tensor& shard, std::size_t b) const {
  return shard.narrow(0, plan.buckets[b].shard_offset, plan.buckets[b].chunk);
}

void FlatGroup::copy_own_chunks(const at::Tensor& full, const at::Tensor& shard, int rank) const {
  for (std::size_t b = 0; b < plan.buckets.size(); ++b) chunk_in_shard(shard, b).copy_(chunk_in_full(full, b, rank));
}

std::vector<std::int64_t> FlatGroup::numels() const {
  std::vector<std::int64_t> n;
  for (const auto& shape : shapes) n.push_back(static_cast<std::int64_t>(c10::multiply_integers(shape)));
  return n;
}

BucketPlan plan_group(const std::vector<std::int64_t>& numels, const FlatOptions& options) {
  std::vector<std::size_t> order(numels.size());
  std::iota(order.rbegin(), order.rend(), 0);  // reverse registration order ≈ the order backward finishes them
  return plan_buckets(numels, order, options.bucket_numel, options.alignment, options.world_size);
}

std::vector<std::unique_ptr<FlatGroup>> build_flat_groups(const std::vector<std::vector<at::Tensor>>& param_groups,
                                                          const FlatOptions& options) {
  std::vector<std::unique_ptr<FlatGroup>> groups;
  at::NoGradGuard no_grad;
  for (std::size_t og = 0; og < param_groups.size(); ++og) {
    // First-seen order of (device, dtype) keeps the layout identical on every rank.
    std::map<std::tuple<int, int, int>, FlatGroup*> by_key;
    for (const auto& p : param_groups[og]) {
      const auto key = std::make_tuple(static_cast<int>(p.device().type()), static_cast<int>(p.device().index()),
                                       static_cast<int>(p.scalar_type()));
      auto it = by_key.find(key);
      if (it == by_key.end()) {
        groups.push_back(std::make_unique<FlatGroup>());
        groups.back()->optimizer_group = og;
        it = by_key.emplace(key, groups.back().get()).first;
      }
      it->second->params.push_back(p);
      it->second->shapes.push_back(p.sizes().vec());
    }
  }
  for (auto& group : groups) {
    group->plan = plan_group(group->numels(), options);
    group->param_flat = at::zeros({group->plan.total_numel}, group->params[0].options().requires_grad(false));
    for (std::size_t i = 0; i < group->params.size(); ++i) {
      auto view = group->view_of(group->param_flat, i);
      view.copy_(group->params[i].detach());
      group->params[i].set_data(view);
      group->param_views.push_back(view);
    }
  }
  return groups;
}

}  // namespace deepspeed::zero
