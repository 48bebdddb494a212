// The order in which a step's new weights are written back behind the next forward (src/zero/write_back.h),
// and that a unit's forward gets exactly the prefix holding its parameters.
#include <gtest/gtest.h>

#include "src/zero/write_back.h"

namespace deepspeed::zero {
namespace {

// A GPT-like layout in reverse registration order: bucket 0 holds the final norm (root) and the last block,
// the last bucket the embeddings (root) and the first block.
std::vector<BucketId> four_buckets() { return {{0, 0}, {0, 1}, {0, 2}, {0, 3}}; }

TEST(WriteBackOrder, RootFirstThenUnitsInOrder) {
  // units 1..3; bucket 0: root + unit 3, bucket 1: units 2 and 3, bucket 2: unit 2, bucket 3: root + unit 1.
  const auto order = plan_write_back(four_buckets(), {{0, 3}, {2, 3}, {2}, {0, 1}}, 3);
  const std::vector<BucketId> expected = {{0, 0}, {0, 3}, {0, 1}, {0, 2}};
  EXPECT_EQ(order.sequence, expected);
  EXPECT_EQ(order.unit_prefix, (std::vector<std::size_t>{2, 2, 4, 3}));
}

TEST(WriteBackOrder, BucketsOfNoUnitGoLastAndUnitsWithoutBucketsNeedNothing) {
  const auto order = plan_write_back(four_buckets(), {{}, {1}, {}, {1}}, 2);
  const std::vector<BucketId> expected = {{0, 1}, {0, 3}, {0, 0}, {0, 2}};
  EXPECT_EQ(order.sequence, expected);
  EXPECT_EQ(order.unit_prefix, (std::vector<std::size_t>{0, 2, 0}));
}

TEST(WriteBackOrder, SeveralGroups) {
  const std::vector<BucketId> buckets = {{0, 0}, {0, 1}, {1, 0}};
  const auto order = plan_write_back(buckets, {{2}, {1}, {0, 2}}, 2);
  const std::vector<BucketId> expected = {{1, 0}, {0, 1}, {0, 0}};
  EXPECT_EQ(order.sequence, expected);
  EXPECT_EQ(order.unit_prefix, (std::vector<std::size_t>{1, 2, 3}));
}

TEST(WriteBackOrder, MismatchedListsAreRejected) {
  EXPECT_THROW(plan_write_back(four_buckets(), {{0}}, 1), std::invalid_argument);
}

struct Recorder {
  std::vector<std::size_t> written;
  int finished = 0;
  ForwardWriteBack make(WriteBackOrder order) {
    return ForwardWriteBack(std::move(order), [this](std::size_t i) { written.push_back(i); }, [this] { ++finished; });
  }
};

TEST(ForwardWriteBack, StepWritesTheRootUnitsTheirPrefixesFinishTheRest) {
  Recorder r;
  auto wb = r.make(plan_write_back(four_buckets(), {{0, 3}, {2, 3}, {2}, {0, 1}}, 3));
  wb.before_forward(2);  // nothing pending before the first step
  EXPECT_TRUE(r.written.empty());
  wb.arm();
  EXPECT_EQ(r.written, (std::vector<std::size_t>{0, 1}));
  EXPECT_TRUE(wb.pending());
  wb.before_forward(1);  // within the root's prefix already
  EXPECT_EQ(r.written.size(), 2u);
  wb.before_forward(3);
  EXPECT_EQ(r.written, (std::vector<std::size_t>{0, 1, 2}));
  EXPECT_EQ(r.finished, 0);
  wb.before_forward(2);
  EXPECT_EQ(r.written, (std::vector<std::size_t>{0, 1, 2, 3}));
  EXPECT_EQ(r.finished, 1);
  EXPECT_FALSE(wb.pending());
  wb.finish();  // idempotent once done
  EXPECT_EQ(r.finished, 1);
  EXPECT_EQ(r.written.size(), 4u);
}

TEST(ForwardWriteBack, ASecondStepFirstFinishesTheFirst) {
  Recorder r;
  auto wb = r.make(plan_write_back(four_buckets(), {{0, 3}, {2, 3}, {2}, {0, 1}}, 3));
  wb.arm();
  wb.arm();
  EXPECT_EQ(r.written, (std::vector<std::size_t>{0, 1, 2, 3, 0, 1}));
  EXPECT_EQ(r.finished, 1);
  wb.finish();
  EXPECT_EQ(r.finished, 2);
}

TEST(ForwardWriteBack, AllRootFinishesAtTheStep) {
  Recorder r;
  auto wb = r.make(plan_write_back({{0, 0}, {0, 1}}, {{0}, {0}}, 0));
  wb.arm();
  EXPECT_EQ(r.written.size(), 2u);
  EXPECT_EQ(r.finished, 1);
  EXPECT_FALSE(wb.pending());
}

}  // namespace
}  // namespace deepspeed::zero
