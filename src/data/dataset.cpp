#include "deepspeed/data/dataset.h"

#include <ATen/ATen.h>

#include <string>

namespace deepspeed::data {

namespace {

at::Tensor stack_or_undefined(const std::vector<at::Tensor>& parts, const char* what) {
  std::size_t defined = 0;
  for (const auto& t : parts) defined += t.defined() ? 1 : 0;
  if (defined == 0) return at::Tensor();
  if (defined != parts.size()) {
    throw std::invalid_argument(std::string("Dataset::get_batch: some samples have a ") + what +
                                " and some do not");
  }
  return at::stack(parts);
}

}  // namespace

Example Dataset::get_batch(std::span<const std::size_t> indices) {
  if (indices.empty()) throw std::invalid_argument("Dataset::get_batch: empty index list");
  std::vector<at::Tensor> data;
  std::vector<at::Tensor> targets;
  data.reserve(indices.size());
  targets.reserve(indices.size());
  for (std::size_t i : indices) {
    Example e = get(i);
    data.push_back(std::move(e.data));
    targets.push_back(std::move(e.target));
  }
  return Example(stack_or_undefined(data, "data tensor"), stack_or_undefined(targets, "target"));
}

TensorDataset::TensorDataset(at::Tensor data, at::Tensor targets)
    : data_(std::move(data)), targets_(std::move(targets)) {
  if (!data_.defined() || !targets_.defined() || data_.dim() == 0 || targets_.dim() == 0) {
    throw UsageError("TensorDataset: data and targets must be defined tensors with a sample dimension");
  }
  if (data_.size(0) != targets_.size(0)) {
    throw UsageError("TensorDataset: data has " + std::to_string(data_.size(0)) + " samples but targets has " +
                     std::to_string(targets_.size(0)));
  }
}

Example TensorDataset::get(std::size_t index) {
  if (index >= size()) {
    throw std::out_of_range("TensorDataset index " + std::to_string(index) + " >= size " +
                            std::to_string(size()));
  }
  const auto i = static_cast<int64_t>(index);
  return Example(data_[i], targets_[i]);
}

Example TensorDataset::get_batch(std::span<const std::size_t> indices) {
  if (indices.empty()) throw std::invalid_argument("TensorDataset::get_batch: empty index list");
  const std::size_t n = size();
  at::Tensor idx = at::empty({static_cast<int64_t>(indices.size())}, at::kLong);
  int64_t* p = idx.data_ptr<int64_t>();
  for (std::size_t k = 0; k < indices.size(); ++k) {
    if (indices[k] >= n) {
      throw std::out_of_range("TensorDataset index " + std::to_string(indices[k]) + " >= size " +
                              std::to_string(n));
    }
    p[k] = static_cast<int64_t>(indices[k]);
  }
  // index_select copies into fresh contiguous tensors, so batches never alias the dataset's storage.
  // The index must live where the tensor does (a dataset may be kept on the GPU).
  auto gather = [&idx](const at::Tensor& t) {
    return t.index_select(0, t.device() == idx.device() ? idx : idx.to(t.device()));
  };
  return Example(gather(data_), gather(targets_));
}

}  // namespace deepspeed::data
