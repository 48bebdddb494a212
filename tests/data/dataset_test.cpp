#include "deepspeed/data/dataset.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/data/datasets/mnist.h>

#include <optional>
#include <vector>

namespace deepspeed::data {
namespace {

// Sample i is data [2] = {i, 10 i}, target i.
TensorDataset numbered(int64_t n) {
  at::Tensor i = at::arange(n, at::kFloat);
  return TensorDataset(at::stack({i, i * 10}, 1), at::arange(n, at::kLong));
}

TEST(TensorDataset, GetAndGetBatch) {
  TensorDataset ds = numbered(6);
  EXPECT_EQ(ds.size(), 6u);
  Example e = ds.get(4);
  EXPECT_EQ(e.data[1].item<float>(), 40.f);
  EXPECT_EQ(e.target.item<int64_t>(), 4);

  const std::vector<std::size_t> idx{5, 0, 3};
  Example b = ds.get_batch(idx);
  EXPECT_EQ(b.data.sizes(), (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(b.target.sizes(), (std::vector<int64_t>{3}));
  EXPECT_TRUE(at::equal(b.target, at::tensor({5, 0, 3}, at::kLong)));
  EXPECT_TRUE(at::equal(b.data.select(1, 1), at::tensor({50.f, 0.f, 30.f})));
  // Batches are copies: writing one must not change the dataset.
  b.data.zero_();
  EXPECT_EQ(ds.get(5).data[0].item<float>(), 5.f);
}

TEST(TensorDataset, RejectsBadInput) {
  EXPECT_THROW(TensorDataset(at::zeros({3, 2}), at::zeros({4})), UsageError);
  EXPECT_THROW(TensorDataset(at::Tensor(), at::zeros({4})), UsageError);
  EXPECT_THROW(TensorDataset(at::zeros({}), at::zeros({})), UsageError);
  TensorDataset ds = numbered(3);
  EXPECT_THROW(ds.get(3), std::out_of_range);
  const std::vector<std::size_t> bad{1, 3};
  EXPECT_THROW(ds.get_batch(bad), std::out_of_range);
  EXPECT_THROW(ds.get_batch({}), std::invalid_argument);
}

// Exercises the default get_batch, which stacks get(i).
class Squares : public Dataset {
 public:
  std::size_t size() const override { return 4; }
  Example get(std::size_t i) override {
    const auto v = static_cast<float>(i * i);
    return Example(at::full({2, 2}, v), at::scalar_tensor(static_cast<int64_t>(i), at::kLong));
  }
};

TEST(Dataset, DefaultGetBatchStacks) {
  Squares ds;
  const std::vector<std::size_t> idx{3, 1};
  Example b = ds.get_batch(idx);
  EXPECT_EQ(b.data.sizes(), (std::vector<int64_t>{2, 2, 2}));
  EXPECT_EQ(b.data[0][1][1].item<float>(), 9.f);
  EXPECT_TRUE(at::equal(b.target, at::tensor({3, 1}, at::kLong)));
}

// LibTorch-style datasets: one with optional size (like torch::data::datasets), one with a plain count and
// no target.
struct OptionalSized {
  torch::data::Example<> get(std::size_t i) {
    return {at::full({3}, static_cast<float>(i)), at::scalar_tensor(int64_t{7}, at::kLong)};
  }
  std::optional<std::size_t> size() const { return 5; }
};
struct Unlabeled {
  torch::data::Example<at::Tensor, torch::data::example::NoTarget> get(std::size_t i) {
    return {at::full({1}, static_cast<float>(i))};
  }
  std::size_t size() const { return 3; }
};
struct Stream {
  torch::data::Example<> get(std::size_t) { return {}; }
  std::optional<std::size_t> size() const { return std::nullopt; }
};

static_assert(TorchStyleDataset<torch::data::datasets::MNIST>);
static_assert(TorchStyleDataset<OptionalSized>);
static_assert(!TorchStyleDataset<TensorDataset>);
static_assert(!TorchStyleDataset<int>);

TEST(MakeDataset, WrapsLibTorchStyleDatasets) {
  std::shared_ptr<Dataset> a = make_dataset(OptionalSized{});
  EXPECT_EQ(a->size(), 5u);
  const std::vector<std::size_t> idx{4, 2};
  Example b = a->get_batch(idx);
  EXPECT_EQ(b.data.sizes(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(b.data[0][0].item<float>(), 4.f);
  EXPECT_TRUE(at::equal(b.target, at::tensor({7, 7}, at::kLong)));
  EXPECT_THROW(a->get(5), std::out_of_range);

  std::shared_ptr<Dataset> u = make_dataset(Unlabeled{});
  EXPECT_EQ(u->size(), 3u);
  const std::vector<std::size_t> uidx{2, 0};
  Example ub = u->get_batch(uidx);
  EXPECT_EQ(ub.data.sizes(), (std::vector<int64_t>{2, 1}));
  EXPECT_FALSE(ub.target.defined());

  EXPECT_THROW(make_dataset(Stream{}), UsageError);
}

TEST(MakeDataset, PassesSharedPointersThrough) {
  auto tensors = std::make_shared<TensorDataset>(numbered(2));
  std::shared_ptr<Dataset> d = make_dataset(tensors);
  EXPECT_EQ(d.get(), tensors.get());
  EXPECT_EQ(make_dataset(d).get(), tensors.get());
}

}  // namespace
}  // namespace deepspeed::data
