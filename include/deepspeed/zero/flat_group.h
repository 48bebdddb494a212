#pragma once
/// \file
/// Trainable parameters laid out in flat buffers: one FlatGroup per (optimizer param group, dtype, device).
/// Each parameter's storage becomes a view into the group's flat parameter buffer (`set_data`), so writing
/// updated weights back or all-gathering them is one operation per bucket, not one per tensor.

#include <memory>
#include <vector>

#include <ATen/core/Tensor.h>

#include "deepspeed/zero/bucket_plan.h"

namespace deepspeed::zero {

struct FlatGroup {
  std::size_t optimizer_group = 0;  ///< index of the optimizer param group these parameters belong to
  std::vector<at::Tensor> params;   ///< the model's parameters, in registration order
  std::vector<std::vector<std::int64_t>> shapes;  ///< their full shapes (ZeRO-3 parameters are empty when released)
  BucketPlan plan;
  at::Tensor param_flat;            ///< model dtype, [plan.total_numel]; params are views into it
  std::vector<at::Tensor> param_views;
  /// ZeRO-3 only: the ZeRO-3 unit the group belongs to, and this rank's shard of param_flat (model dtype,
  /// [plan.shard_numel]); param_flat's storage is then empty except while the unit is gathered.
  std::size_t unit = 0;
  at::Tensor param_shard;

  /// A view of `flat` (a tensor with this group's flat layout) shaped like parameter i.
  at::Tensor view_of(const at::Tensor& flat, std::size_t i) const;
  /// This rank's chunk of bucket b inside a full flat tensor / inside a shard tensor.
  at::Tensor bucket(const at::Tensor& flat, std::size_t b) const;
  at::Tensor chunk_in_full(const at::Tensor& flat, std::size_t b, int rank) const;
  at::Tensor chunk_in_shard(const at::Tensor& shard, std::size_t b) const;
  /// Copies `rank`'s chunk of every bucket of `full` (this group's flat layout) into `shard` (any device/dtype).
  void copy_own_chunks(const at::Tensor& full, const at::Tensor& shard, int rank) const;
  std::vector<std::int64_t> numels() const;  ///< full element counts, from `shapes`
};

struct FlatOptions {
  std::int64_t bucket_numel = 1 << 23;
  std::int64_t alignment = kAlignment;
  int world_size = 1;
};

/// The layout build_flat_groups() uses for parameters of these sizes (reverse registration order), so a
/// checkpoint written under one world size can be re-laid-out under another.
BucketPlan plan_group(const std::vector<std::int64_t>& numels, const FlatOptions& options);

/// Groups the parameters of each optimizer group by (dtype, device), plans their buckets in reverse
/// registration order, allocates the flat buffers and re-points every parameter at its view (values kept).
/// Every rank must pass the same structure so the layouts agree.
std::vector<std::unique_ptr<FlatGroup>> build_flat_groups(const std::vector<std::vector<at::Tensor>>& param_groups,
                                                          const FlatOptions& options);

}  // namespace deepspeed::zero
