#include "deepspeed/data/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <set>
#include <vector>

#include "deepspeed/util/error.h"

namespace deepspeed::data {
namespace {

using Indices = std::vector<std::size_t>;

std::vector<Indices> all_ranks(std::size_t n, std::size_t world, bool shuffle, std::uint64_t seed, bool drop_last,
                               std::uint64_t epoch = 0) {
  std::vector<Indices> out;
  for (std::size_t r = 0; r < world; ++r) {
    DistributedSampler s(n, world, r, shuffle, seed, drop_last);
    s.set_epoch(epoch);
    out.push_back(s.indices());
  }
  return out;
}

TEST(SamplerArithmetic, SamplesPerReplica) {
  EXPECT_EQ(samples_per_replica(10, 3, false), 4u);
  EXPECT_EQ(samples_per_replica(10, 3, true), 3u);
  EXPECT_EQ(samples_per_replica(9, 3, false), 3u);
  EXPECT_EQ(samples_per_replica(9, 3, true), 3u);
  EXPECT_EQ(samples_per_replica(2, 5, false), 1u);
  EXPECT_EQ(samples_per_replica(2, 5, true), 0u);
  EXPECT_EQ(samples_per_replica(0, 4, false), 0u);
  EXPECT_THROW(samples_per_replica(10, 0, false), UsageError);
}

TEST(SamplerArithmetic, PadOrTrimRepeatsCyclically) {
  const Indices order{7, 3, 5};
  EXPECT_EQ(pad_or_trim(order, 2), (Indices{7, 3}));
  EXPECT_EQ(pad_or_trim(order, 3), order);
  EXPECT_EQ(pad_or_trim(order, 5), (Indices{7, 3, 5, 7, 3}));
  // Padding longer than the list itself wraps more than once, as PyTorch's (indices * k)[:pad] does.
  EXPECT_EQ(pad_or_trim(order, 8), (Indices{7, 3, 5, 7, 3, 5, 7, 3}));
  EXPECT_TRUE(pad_or_trim(Indices{}, 0).empty());
  EXPECT_THROW(pad_or_trim(Indices{}, 1), UsageError);
}

TEST(SamplerArithmetic, StrideForRank) {
  const Indices padded{0, 1, 2, 3, 4, 5, 6, 7, 8};
  EXPECT_EQ(stride_for_rank(padded, 0, 3), (Indices{0, 3, 6}));
  EXPECT_EQ(stride_for_rank(padded, 2, 3), (Indices{2, 5, 8}));
  EXPECT_THROW(stride_for_rank(padded, 3, 3), UsageError);
}

TEST(DistributedSampler, RejectsBadRank) {
  EXPECT_THROW(DistributedSampler(10, 2, 2), UsageError);
  EXPECT_THROW(DistributedSampler(10, 0, 0), UsageError);
}

// Without drop_last the ranks together see every index; the only repeats are the padding, which PyTorch
// takes from the start of the epoch's order, so there are exactly total_size - n of them.
TEST(DistributedSampler, RanksCoverEpochWithOnlyPaddingDuplicates) {
  for (std::size_t n : {1, 2, 5, 7, 10, 17, 100, 101}) {
    for (std::size_t world : {1, 2, 3, 4, 8}) {
      for (bool shuffle : {false, true}) {
        SCOPED_TRACE("n=" + std::to_string(n) + " world=" + std::to_string(world) + " shuffle=" +
                     std::to_string(shuffle));
        const auto ranks = all_ranks(n, world, shuffle, 3, false);
        const std::size_t per_rank = (n + world - 1) / world;
        std::map<std::size_t, std::size_t> count;
        for (const auto& idx : ranks) {
          ASSERT_EQ(idx.size(), per_rank);
          for (std::size_t i : idx) {
            ASSERT_LT(i, n);
            ++count[i];
          }
        }
        EXPECT_EQ(count.size(), n);
        std::size_t repeats = 0;
        for (auto [i, c] : count) repeats += c - 1;
        EXPECT_EQ(repeats, per_rank * world - n);

        Indices order(n);
        if (shuffle) order = seeded_permutation(n, 3);
        else std::iota(order.begin(), order.end(), 0);
        // The padded copies are the first entries of the order.
        for (std::size_t k = 0; k < per_rank * world - n; ++k) EXPECT_GE(count[order[k % n]], 2u);
      }
    }
  }
}

TEST(DistributedSampler, DropLastIsDisjointAndEqualSized) {
  for (std::size_t n : {1, 2, 5, 7, 10, 17, 100, 101}) {
    for (std::size_t world : {1, 2, 3, 4, 8}) {
      SCOPED_TRACE("n=" + std::to_string(n) + " world=" + std::to_string(world));
      const auto ranks = all_ranks(n, world, true, 0, true);
      std::set<std::size_t> seen;
      for (const auto& idx : ranks) {
        ASSERT_EQ(idx.size(), n / world);
        for (std::size_t i : idx) EXPECT_TRUE(seen.insert(i).second) << "index " << i << " on two ranks";
      }
      EXPECT_EQ(seen.size(), (n / world) * world);
      DistributedSampler s(n, world, 0, true, 0, true);
      EXPECT_EQ(s.total_size(), (n / world) * world);
    }
  }
}

TEST(DistributedSampler, EpochsReshuffleDeterministically) {
  DistributedSampler s(100, 2, 1, true, 17);
  const Indices e0 = s.indices();
  EXPECT_EQ(s.indices(), e0);
  s.set_epoch(1);
  const Indices e1 = s.indices();
  EXPECT_NE(e1, e0);
  s.set_epoch(0);
  EXPECT_EQ(s.indices(), e0);
  EXPECT_NE(DistributedSampler(100, 2, 1, true, 18).indices(), e0);
  // Without shuffle the epoch changes nothing.
  DistributedSampler plain(10, 2, 1, false);
  plain.set_epoch(9);
  EXPECT_EQ(plain.indices(), (Indices{1, 3, 5, 7, 9}));
}

// Expected values produced with python torch 2.11.0:
//   from torch.utils.data.distributed import DistributedSampler
//   s = DistributedSampler(range(n), num_replicas=R, rank=r, seed=seed, drop_last=dl); s.set_epoch(e); list(s)
TEST(DistributedSampler, MatchesPyTorchOrder) {
  EXPECT_EQ(all_ranks(10, 3, true, 0, false, 0), (std::vector<Indices>{{4, 5, 0, 2}, {1, 3, 8, 4}, {7, 9, 6, 1}}));
  EXPECT_EQ(all_ranks(10, 3, true, 0, false, 1), (std::vector<Indices>{{5, 2, 9, 4}, {6, 0, 3, 5}, {1, 8, 7, 6}}));
  EXPECT_EQ(all_ranks(10, 3, true, 42, true, 0), (std::vector<Indices>{{2, 8, 0}, {6, 4, 9}, {1, 5, 3}}));
  EXPECT_EQ(all_ranks(7, 4, true, 5, false, 2), (std::vector<Indices>{{5, 2}, {0, 6}, {3, 4}, {1, 5}}));
  EXPECT_EQ(all_ranks(2, 5, true, 0, false, 0), (std::vector<Indices>{{0}, {1}, {0}, {1}, {0}}));
}

// Expected values produced with python torch 2.11.0:
//   g = torch.Generator(); g.manual_seed(seed); torch.randperm(n, generator=g).tolist()
TEST(DistributedSampler, SeededPermutationMatchesTorchRandperm) {
  EXPECT_EQ(seeded_permutation(20, 123),
            (Indices{2, 9, 14, 15, 16, 7, 8, 5, 19, 0, 11, 18, 10, 17, 12, 6, 1, 13, 3, 4}));
  const Indices big = seeded_permutation(60000, 7);
  EXPECT_EQ(Indices(big.begin(), big.begin() + 8), (Indices{21615, 50166, 37383, 3791, 38823, 45497, 50045, 50591}));
  EXPECT_EQ(Indices(big.end() - 4, big.end()), (Indices{5524, 44752, 26176, 40145}));
  EXPECT_EQ(std::accumulate(big.begin(), big.end(), std::size_t{0}), 1799970000u);
  const Indices huge = seeded_permutation(100000, 7);
  EXPECT_EQ(Indices(huge.begin(), huge.begin() + 8), (Indices{41615, 23657, 92717, 16389, 28607, 45432, 45737, 59262}));
  EXPECT_EQ(Indices(huge.end() - 4, huge.end()), (Indices{34296, 52301, 18202, 73623}));
  EXPECT_TRUE(seeded_permutation(0, 1).empty());
}

}  // namespace
}  // namespace deepspeed::data
