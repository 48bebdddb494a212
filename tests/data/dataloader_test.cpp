#include "deepspeed/data/dataloader.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <iterator>
#include <set>
#include <vector>

namespace deepspeed::data {
namespace {

static_assert(std::input_iterator<DataLoader::Iterator>);
static_assert(std::sentinel_for<std::default_sentinel_t, DataLoader::Iterator>);

using Indices = std::vector<std::size_t>;

// Sample i has data [3] filled with i and target i, so batches reveal which indices they hold.
std::shared_ptr<Dataset> numbered(int64_t n) {
  at::Tensor i = at::arange(n, at::kLong);
  return std::make_shared<TensorDataset>(i.to(at::kFloat).unsqueeze(1).expand({n, 3}).contiguous(), i);
}

std::vector<Indices> batches_of(DataLoader& loader) {
  std::vector<Indices> out;
  for (auto& batch : loader) {
    Indices ids;
    for (int64_t k = 0; k < batch.target.size(0); ++k) {
      ids.push_back(static_cast<std::size_t>(batch.target[k].item<int64_t>()));
    }
    out.push_back(ids);
  }
  return out;
}

TEST(DataLoader, BatchCountShapesAndPartialLastBatch) {
  // 23 samples over 2 ranks: 12 each (one padding sample); micro-batch 5 gives 5 + 5 + 2.
  DataLoader loader(numbered(23), 5, DistributedSampler(23, 2, 1, true, 0));
  EXPECT_EQ(loader.size(), 3u);
  std::vector<int64_t> sizes;
  for (auto& batch : loader) {
    EXPECT_EQ(batch.data.dim(), 2);
    EXPECT_EQ(batch.data.size(1), 3);
    EXPECT_EQ(batch.data.scalar_type(), at::kFloat);
    EXPECT_EQ(batch.target.scalar_type(), at::kLong);
    EXPECT_TRUE(batch.data.is_cpu());
    EXPECT_TRUE(at::equal(batch.data.select(1, 2), batch.target.to(at::kFloat)));
    sizes.push_back(batch.data.size(0));
  }
  EXPECT_EQ(sizes, (std::vector<int64_t>{5, 5, 2}));
}

TEST(DataLoader, BatchesFollowTheSamplerOrder) {
  DistributedSampler sampler(23, 2, 0, true, 9);
  DataLoader loader(numbered(23), 4, sampler);
  Indices flat;
  for (const auto& b : batches_of(loader)) flat.insert(flat.end(), b.begin(), b.end());
  EXPECT_EQ(flat, sampler.indices());
}

TEST(DataLoader, DropLastDropsThePartialBatch) {
  DataLoader loader(numbered(23), 5, DistributedSampler(23, 2, 0), /*drop_last=*/true);
  EXPECT_EQ(loader.size(), 2u);
  const auto batches = batches_of(loader);
  ASSERT_EQ(batches.size(), 2u);
  for (const auto& b : batches) EXPECT_EQ(b.size(), 5u);
}

TEST(DataLoader, RanksTogetherCoverTheDataset) {
  std::set<std::size_t> seen;
  for (std::size_t rank = 0; rank < 3; ++rank) {
    DataLoader loader(numbered(20), 3, DistributedSampler(20, 3, rank));
    for (const auto& b : batches_of(loader)) seen.insert(b.begin(), b.end());
  }
  EXPECT_EQ(seen.size(), 20u);
}

TEST(DataLoader, CallbackRunsOncePerBatch) {
  DataLoader loader(numbered(10), 3, DistributedSampler(10, 1, 0));
  int calls = 0;
  loader.on_batch([&calls] { ++calls; });
  int batches = 0;
  for (auto& batch : loader) {
    ++batches;
    EXPECT_EQ(calls, batches);  // called for this batch before the body sees it, not ahead of time
    (void)batch;
  }
  EXPECT_EQ(batches, 4);
  EXPECT_EQ(calls, 4);
  loader.on_batch({});
  for (auto& batch : loader) (void)batch;
  EXPECT_EQ(calls, 4);
}

TEST(DataLoader, EachPassAdvancesTheEpoch) {
  DataLoader loader(numbered(50), 50, DistributedSampler(50, 1, 0, true, 1));
  EXPECT_EQ(loader.epoch(), 0u);
  const auto first = batches_of(loader);
  EXPECT_EQ(loader.epoch(), 0u);
  const auto second = batches_of(loader);
  EXPECT_EQ(loader.epoch(), 1u);
  EXPECT_NE(first, second);

  DistributedSampler reference(50, 1, 0, true, 1);
  reference.set_epoch(1);
  EXPECT_EQ(second.front(), reference.indices());

  // set_epoch pins the next pass (resume), then passes advance from there.
  loader.set_epoch(0);
  EXPECT_EQ(batches_of(loader), first);
  EXPECT_EQ(batches_of(loader), second);
  loader.set_epoch(7);
  EXPECT_EQ(loader.epoch(), 7u);
  batches_of(loader);
  EXPECT_EQ(loader.epoch(), 7u);
  batches_of(loader);
  EXPECT_EQ(loader.epoch(), 8u);

  // PyTorch's idiom of set_epoch before every pass sees exactly the epochs it asks for.
  for (std::uint64_t e : {3u, 3u, 4u}) {
    loader.set_epoch(e);
    batches_of(loader);
    EXPECT_EQ(loader.epoch(), e);
  }
}

TEST(DataLoader, EmptyShardYieldsNoBatches) {
  // 2 samples over 5 ranks with drop_last: nobody gets anything.
  DataLoader loader(numbered(2), 4, DistributedSampler(2, 5, 3, true, 0, true));
  EXPECT_EQ(loader.size(), 0u);
  EXPECT_TRUE(loader.begin() == loader.end());
}

TEST(DataLoader, IteratorCopiesKeepTheirBatch) {
  DataLoader loader(numbered(4), 1, DistributedSampler(4, 1, 0, false));
  auto it = loader.begin();
  auto copy = it;
  ++it;
  EXPECT_EQ(copy->target.item<int64_t>(), 0);
  EXPECT_EQ(it->target.item<int64_t>(), 1);
  EXPECT_EQ(it.batch_index(), 1u);
}

TEST(DataLoader, PinMemoryIsHarmlessWithoutCuda) {
  DataLoader loader(numbered(4), 2, DistributedSampler(4, 1, 0));
  loader.set_pin_memory(true);
  EXPECT_TRUE(loader.pin_memory());
  int n = 0;
  for (auto& batch : loader) {
    EXPECT_TRUE(batch.data.is_cpu());
    if (at::hasCUDA()) EXPECT_TRUE(batch.data.is_pinned());
    ++n;
  }
  EXPECT_EQ(n, 2);
}

TEST(DataLoader, WorksWithAdaptedDatasets) {
  struct Plain {
    torch::data::Example<> get(std::size_t i) {
      return {at::full({2}, static_cast<float>(i)), at::scalar_tensor(static_cast<int64_t>(i), at::kLong)};
    }
    std::size_t size() const { return 7; }
  };
  DataLoader loader(make_dataset(Plain{}), 3, DistributedSampler(7, 1, 0, false));
  EXPECT_EQ(batches_of(loader), (std::vector<Indices>{{0, 1, 2}, {3, 4, 5}, {6}}));
}

TEST(DataLoader, RejectsBadArguments) {
  EXPECT_THROW(DataLoader(numbered(10), 0, DistributedSampler(10, 1, 0)), UsageError);
  EXPECT_THROW(DataLoader(numbered(10), 2, DistributedSampler(11, 1, 0)), UsageError);
  EXPECT_THROW(DataLoader(nullptr, 2, DistributedSampler(11, 1, 0)), UsageError);
}

}  // namespace
}  // namespace deepspeed::data
