#pragma once
/// \file
/// DeepSpeed's training data loader (deepspeed/runtime/dataloader.py, DeepSpeedDataLoader) for the
/// data-parallel case: each rank reads micro-batches of its DistributedSampler shard, in order, on the
/// calling thread.
///
/// One deliberate difference: DeepSpeed never calls set_epoch on its sampler, so every epoch repeats the
/// epoch-0 shuffle. This loader advances the sampler's epoch at each new pass (each begin()), so every epoch
/// has its own order; set_epoch() pins the epoch explicitly (resuming from a checkpoint, or the PyTorch
/// idiom of calling set_epoch(e) before each pass, which then works unchanged).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <span>
#include <vector>

#include "deepspeed/data/dataset.h"
#include "deepspeed/data/sampler.h"

namespace deepspeed::data {

/// Iterates a Dataset in micro-batches of this rank's DistributedSampler indices:
///
///     DataLoader loader(dataset, 32, DistributedSampler(dataset->size(), world, rank));
///     for (int e = 0; e < epochs; ++e)
///       for (auto& batch : loader) { /* batch.data [32, ...], batch.target [32] */ }
///
/// Batches are CPU tensors (unless the dataset's tensors live elsewhere) stacked along dimension 0; the last
/// one of an epoch is smaller when micro_batch_size does not divide num_samples(), unless drop_last.
/// Not thread-safe; iterators refer to the loader, which must outlive them.
class DataLoader {
 public:
  class Iterator;

  /// Throws UsageError if dataset is null, micro_batch_size is 0, or the sampler was built for a dataset
  /// of a different size.
  DataLoader(std::shared_ptr<Dataset> dataset, std::size_t micro_batch_size, DistributedSampler sampler,
             bool drop_last = false);

  /// Starts a pass over the epoch returned by epoch() afterwards: the first begin() (or the first after
  /// set_epoch(e)) uses the current epoch as is, every later one first advances it by one. Loads the first
  /// batch eagerly (calling the on_batch callback) when there is one.
  Iterator begin();
  std::default_sentinel_t end() const { return {}; }

  /// Micro-batches per epoch on this rank: ceil(num_samples / micro_batch_size), floor with drop_last.
  std::size_t size() const;

  /// Makes the next begin() iterate epoch `epoch` (no advance before it).
  void set_epoch(std::uint64_t epoch);
  /// The epoch of the pass in progress (or last finished); before any pass, the epoch the first will use.
  std::uint64_t epoch() const { return sampler_.epoch(); }

  /// Called once per produced batch, just before the batch is read from the dataset, as DeepSpeed starts
  /// its throughput timer on each __next__. Pass an empty function to remove it.
  void on_batch(std::function<void()> callback) { on_batch_ = std::move(callback); }

  /// Copy batches to page-locked memory so host-to-device copies can be asynchronous. Ignored when no CUDA
  /// device is present (pinning needs the CUDA runtime).
  void set_pin_memory(bool pin) { pin_memory_ = pin; }
  bool pin_memory() const { return pin_memory_; }

  std::size_t micro_batch_size() const { return micro_batch_size_; }
  bool drop_last() const { return drop_last_; }
  const DistributedSampler& sampler() const { return sampler_; }
  const std::shared_ptr<Dataset>& dataset() const { return dataset_; }

 private:
  Example load(std::span<const std::size_t> indices);

  std::shared_ptr<Dataset> dataset_;
  std::size_t micro_batch_size_;
  DistributedSampler sampler_;
  bool drop_last_;
  bool pin_memory_ = false;
  // False until a pass consumes the sampler's epoch; set_epoch() resets it so its epoch is used as is.
  bool epoch_started_ = false;
  std::function<void()> on_batch_;
};

/// Single-pass input iterator over one epoch; compare with end() (std::default_sentinel). The referenced
/// batch stays valid until the iterator is incremented.
class DataLoader::Iterator {
 public:
  using iterator_concept = std::input_iterator_tag;
  using value_type = Example;
  using difference_type = std::ptrdiff_t;

  Iterator() = default;

  Example& operator*() const { return *current_; }
  Example* operator->() const { return current_.get(); }
  Iterator& operator++();
  void operator++(int) { ++*this; }

  /// Index of the current batch within the epoch (0-based).
  std::size_t batch_index() const { return batch_index_; }

  friend bool operator==(const Iterator& it, std::default_sentinel_t) { return it.batch_index_ >= it.num_batches_; }

 private:
  friend class DataLoader;
  Iterator(DataLoader* loader, std::shared_ptr<const std::vector<std::size_t>> indices, std::size_t num_batches);
  void load_current();

  DataLoader* loader_ = nullptr;
  std::shared_ptr<const std::vector<std::size_t>> indices_;
  std::size_t num_batches_ = 0;
  std::size_t batch_index_ = 0;
  // Shared so that const operator* can hand out a mutable reference, as range-for's `auto&` needs.
  std::shared_ptr<Example> current_;
};

}  // namespace deepspeed::data
