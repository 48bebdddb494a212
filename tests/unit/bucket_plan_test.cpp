#include <gtest/gtest.h>

#include <numeric>

#include "deepspeed/zero/bucket_plan.h"

using deepspeed::zero::plan_buckets;

TEST(BucketPlanTest, BucketsTileTheBufferInOrder) {
  const std::vector<std::int64_t> numels = {10, 7, 33, 1, 64};
  std::vector<std::size_t> order = {4, 3, 2, 1, 0};
  const auto plan = plan_buckets(numels, order, /*capacity=*/64, /*alignment=*/16);
  // Layout: p4 [0,64) fills a bucket; p3 [64,65), p2 [80,113) share one (end-start 49 ≤ 64); p1 at 128 would
  // end at 135 → 71 > 64: new bucket; p0 at 144..154 fits with p1 (26 ≤ 64).
  EXPECT_EQ(plan.offset[4], 0);
  EXPECT_EQ(plan.offset[3], 64);
  EXPECT_EQ(plan.offset[2], 80);
  EXPECT_EQ(plan.offset[1], 128);
  EXPECT_EQ(plan.offset[0], 144);
  EXPECT_EQ(plan.total_numel, 160);
  ASSERT_EQ(plan.buckets.size(), 3u);
  std::int64_t cursor = 0;
  for (const auto& b : plan.buckets) {
    EXPECT_EQ(b.offset, cursor);
    cursor += b.numel;
  }
  EXPECT_EQ(cursor, plan.total_numel);
  EXPECT_EQ(plan.buckets[1].members, (std::vector<std::size_t>{3, 2}));
  EXPECT_EQ(plan.bucket_of[0], 2u);
}

TEST(BucketPlanTest, OversizedParameterGetsItsOwnBucket) {
  const auto plan = plan_buckets({5, 1000, 5}, {0, 1, 2}, 100, 1);
  ASSERT_EQ(plan.buckets.size(), 3u);
  EXPECT_EQ(plan.buckets[1].numel, 1000);
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(plan.bucket_of[i], i);
}

TEST(BucketPlanTest, EveryParameterPlacedOnceWithoutOverlap) {
  std::vector<std::int64_t> numels;
  for (int i = 1; i <= 50; ++i) numels.push_back((i * 37) % 91 + 1);
  std::vector<std::size_t> order(numels.size());
  std::iota(order.rbegin(), order.rend(), 0);
  const auto plan = plan_buckets(numels, order, 128, 4);
  std::vector<int> cover(static_cast<std::size_t>(plan.total_numel), 0);
  for (std::size_t i = 0; i < numels.size(); ++i) {
    EXPECT_EQ(plan.offset[i] % 4, 0);
    const auto& b = plan.buckets[plan.bucket_of[i]];
    EXPECT_GE(plan.offset[i], b.offset);
    EXPECT_LE(plan.offset[i] + numels[i], b.offset + b.numel);
    for (std::int64_t k = 0; k < numels[i]; ++k) ++cover[static_cast<std::size_t>(plan.offset[i] + k)];
  }
  for (int c : cover) EXPECT_LE(c, 1);
}

TEST(BucketPlanTest, ShardsCoverEveryElementOnceForUnevenSizes) {
  for (int ws : {1, 2, 3, 4}) {
    std::vector<std::int64_t> numels = {91, 13, 65, 5, 3, 1000, 7};
    std::vector<std::size_t> order(numels.size());
    std::iota(order.rbegin(), order.rend(), 0);
    const auto plan = plan_buckets(numels, order, 100, 4, ws);
    std::int64_t shard = 0;
    for (const auto& b : plan.buckets) {
      EXPECT_EQ(b.numel % (4 * ws), 0);
      EXPECT_EQ(b.chunk * ws, b.numel);
      EXPECT_EQ(b.shard_offset, shard);
      shard += b.chunk;
    }
    EXPECT_EQ(plan.shard_numel, shard);
    for (std::size_t i = 0; i < numels.size(); ++i) {
      std::int64_t covered = 0;
      for (int r = 0; r < ws; ++r) {
        const auto part = plan.owned_part(i, numels[i], r);
        covered += part.end - part.begin;
        for (std::int64_t x = part.begin; x < part.end; ++x) {
          int owner = -1;
          const auto pos = plan.shard_position(x, &owner);
          EXPECT_EQ(owner, r);
          EXPECT_GE(pos, 0);
          EXPECT_LT(pos, plan.shard_numel);
        }
      }
      EXPECT_EQ(covered, numels[i]) << "ws=" << ws << " param " << i;
    }
  }
}
