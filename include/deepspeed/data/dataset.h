#pragma once
/// \file
/// Random-access datasets the DataLoader reads from: a type-erased interface, an in-memory TensorDataset,
/// and make_dataset() to wrap LibTorch-style datasets (anything with `get(size_t)` and `size()`, e.g.
/// torch::data::datasets::MNIST).

#include <torch/data/example.h>

#include <concepts>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "deepspeed/util/error.h"

namespace deepspeed::data {

/// One sample, or a batch of samples stacked along a new leading dimension.
using Example = torch::data::Example<>;

/// A dataset indexed by [0, size()). Implementations need not be thread-safe: the DataLoader calls them
/// from the thread that iterates it.
class Dataset {
 public:
  virtual ~Dataset() = default;

  /// Number of samples; fixed for the dataset's lifetime.
  virtual std::size_t size() const = 0;

  /// Sample `index`. Requires index < size() (implementations throw std::out_of_range otherwise).
  virtual Example get(std::size_t index) = 0;

  /// The samples at `indices`, in that order, stacked: data is [indices.size(), ...], and so is target
  /// (a target left undefined by every sample stays undefined). Requires a non-empty `indices`, each
  /// < size(), and samples of equal shapes. The default stacks get(i); override for a faster gather.
  virtual Example get_batch(std::span<const std::size_t> indices);
};

/// Samples held as two tensors whose first dimension indexes the sample (e.g. images [N, C, H, W] and
/// labels [N]). get_batch gathers with one index_select per tensor.
class TensorDataset : public Dataset {
 public:
  /// Throws UsageError unless both tensors are defined, have at least one dimension and the same size(0).
  TensorDataset(at::Tensor data, at::Tensor targets);

  std::size_t size() const override { return static_cast<std::size_t>(data_.size(0)); }
  Example get(std::size_t index) override;
  Example get_batch(std::span<const std::size_t> indices) override;

  const at::Tensor& data() const { return data_; }
  const at::Tensor& targets() const { return targets_; }

 private:
  at::Tensor data_;
  at::Tensor targets_;
};

namespace detail {

/// What a wrapped dataset's size() may return: LibTorch's datasets use std::optional<size_t> (empty for
/// streams), hand-written ones often a plain count.
template <typename S>
concept SizeResult =
    std::convertible_to<S, std::size_t> || std::same_as<std::remove_cvref_t<S>, std::optional<std::size_t>>;

template <SizeResult S>
std::size_t known_size(const S& s) {
  if constexpr (std::is_convertible_v<S, std::size_t>) {
    return static_cast<std::size_t>(s);
  } else {
    if (!s.has_value()) throw UsageError("make_dataset: the dataset does not report a size (a stream?)");
    return static_cast<std::size_t>(*s);
  }
}

template <typename D>
class DatasetAdapter final : public Dataset {
 public:
  explicit DatasetAdapter(D dataset) : dataset_(std::move(dataset)), size_(known_size(dataset_.size())) {}

  std::size_t size() const override { return size_; }

  Example get(std::size_t index) override {
    if (index >= size_) throw std::out_of_range("dataset index " + std::to_string(index) + " >= size " +
                                                std::to_string(size_));
    auto example = dataset_.get(index);
    // LibTorch's unlabeled datasets return Example<Tensor, NoTarget>, which has no target member; carry
    // them with an undefined target.
    if constexpr (requires { example.target; }) {
      return Example(std::move(example.data), std::move(example.target));
    } else {
      return Example(std::move(example.data), at::Tensor());
    }
  }

 private:
  D dataset_;
  std::size_t size_;
};

}  // namespace detail

/// What make_dataset() accepts by value: a non-Dataset type with `get(size_t)` returning something with a
/// tensor `.data` and, optionally, a tensor `.target` (torch::data::Example<> or Example<Tensor, NoTarget>),
/// and `size() const` returning size_t or std::optional<size_t>.
template <typename D>
concept TorchStyleDataset = !std::derived_from<D, Dataset> && requires(D& d, const D& cd, std::size_t i) {
  { d.get(i).data } -> std::convertible_to<at::Tensor>;
  { cd.size() } -> detail::SizeResult;
};

/// Wraps a LibTorch-style dataset (moved into the adapter) as a Dataset. Throws UsageError if its size()
/// is an empty optional. get_batch stacks get(i).
template <TorchStyleDataset D>
std::shared_ptr<Dataset> make_dataset(D dataset) {
  return std::make_shared<detail::DatasetAdapter<D>>(std::move(dataset));
}

/// Passthrough, so callers can hand either kind to make_dataset().
template <std::derived_from<Dataset> T>
std::shared_ptr<Dataset> make_dataset(std::shared_ptr<T> dataset) {
  return dataset;
}

}  // namespace deepspeed::data
