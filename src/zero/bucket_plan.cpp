#include "deepspeed/zero/bucket_plan.h"

#include <algorithm>
#include <stdexcept>

namespace deepspeed::zero {

BucketPlan plan_buckets(const std::vector<std::int64_t>& numels, const std::vector<std::size_t>& order,
                        std::int64_t bucket_capacity, std::int64_t alignment, int world_size) {
  if (order.size() != numels.size()) throw std::invalid_argument("plan_buckets: order must list every parameter");
  if (bucket_capacity < 1 || alignment < 1 || world_size < 1) {
    throw std::invalid_argument("plan_buckets: capacity, alignment and world size must be positive");
  }
  BucketPlan plan;
  plan.world_size = world_size;
  plan.offset.assign(numels.size(), 0);
  plan.bucket_of.assign(numels.size(), 0);
  const std::int64_t granule = alignment * world_size;  // every chunk stays aligned
  auto close_bucket = [&](std::int64_t end) {
    auto& b = plan.buckets.back();
    b.numel = round_up(std::max<std::int64_t>(end - b.offset, 1), granule);
    b.chunk = b.numel / world_size;
  };
  std::int64_t cursor = 0;
  for (const std::size_t index : order) {
    const std::int64_t start = round_up(cursor, alignment);
    const std::int64_t end = start + numels.at(index);
    const bool fits = !plan.buckets.empty() && end - plan.buckets.back().offset <= bucket_capacity;
    std::int64_t placed = start;
    if (!fits) {
      std::int64_t next = 0;
      if (!plan.buckets.empty()) {
        close_bucket(cursor);
        next = plan.buckets.back().offset + plan.buckets.back().numel;
      }
      plan.buckets.push_back(BucketPlan::Bucket{next, 0, 0, 0, {}});
      placed = next;
    }
    plan.buckets.back().members.push_back(index);
    plan.offset[index] = placed;
    plan.bucket_of[index] = plan.buckets.size() - 1;
    cursor = placed + numels.at(index);
  }
  if (!plan.buckets.empty()) close_bucket(cursor);
  std::int64_t shard = 0;
  for (auto& b : plan.buckets) {
    b.shard_offset = shard;
    shard += b.chunk;
  }
  plan.shard_numel = shard;
  plan.total_numel = plan.buckets.empty() ? 0 : plan.buckets.back().offset + plan.buckets.back().numel;
  return plan;
}

BucketPlan::Range BucketPlan::owned_part(std::size_t param, std::int64_t numel, int rank) const {
  const auto& b = buckets.at(bucket_of.at(param));
  const std::int64_t lo = b.offset + rank * b.chunk;
  const std::int64_t hi = lo + b.chunk;
  const std::int64_t begin = std::max(lo, offset[param]);
  const std::int64_t end = std::min(hi, offset[param] + numel);
  return begin < end ? Range{begin, end} : Range{begin, begin};
}

std::int64_t BucketPlan::shard_position(std::int64_t flat_offset, int* rank) const {
  const auto it = std::upper_bound(buckets.begin(), buckets.end(), flat_offset,
                                   [](std::int64_t x, const Bucket& b) { return x < b.offset; });
  if (it == buckets.begin() || flat_offset >= total_numel) throw std::out_of_range("shard_position: outside the buffer");
  const Bucket& b = *(it - 1);
  const std::int64_t within = flat_offset - b.offset;
  if (rank) *rank = static_cast<int>(within / b.chunk);
  return b.shard_offset + within % b.chunk;
}

}  // namespace deepspeed::zero
