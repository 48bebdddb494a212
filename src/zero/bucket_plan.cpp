#include "deepspeed/zero/bucket_plan.h"

#include <stdexcept>

namespace deepspeed::zero {

BucketPlan plan_buckets(const std::vector<std::int64_t>& numels, const std::vector<std::size_t>& order,
                        std::int64_t bucket_capacity, std::int64_t alignment) {
  if (order.size() != numels.size()) throw std::invalid_argument("plan_buckets: order must list every parameter");
  if (bucket_capacity < 1 || alignment < 1) throw std::invalid_argument("plan_buckets: capacity and alignment must be positive");
  BucketPlan plan;
  plan.offset.assign(numels.size(), 0);
  plan.bucket_of.assign(numels.size(), 0);
  std::int64_t cursor = 0;
  for (const std::size_t index : order) {
    const std::int64_t start = round_up(cursor, alignment);
    const std::int64_t end = start + numels.at(index);
    const bool fits = !plan.buckets.empty() && end - plan.buckets.back().offset <= bucket_capacity;
    if (!fits) {
      // Buckets tile the buffer: the alignment gap before a new bucket belongs to the previous one.
      if (!plan.buckets.empty()) plan.buckets.back().numel = start - plan.buckets.back().offset;
      plan.buckets.push_back(BucketPlan::Bucket{start, 0, {}});
    }
    auto& bucket = plan.buckets.back();
    bucket.members.push_back(index);
    bucket.numel = end - bucket.offset;
    plan.offset[index] = start;
    plan.bucket_of[index] = plan.buckets.size() - 1;
    cursor = end;
  }
  plan.total_numel = round_up(cursor, alignment);
  if (!plan.buckets.empty()) plan.buckets.back().numel = plan.total_numel - plan.buckets.back().offset;
  return plan;
}

}  // namespace deepspeed::zero
