#include "deepspeed/data/dataloader.h"

#include <ATen/Context.h>
#include <ATen/core/Tensor.h>

#include <algorithm>
#include <string>

#include "deepspeed/util/error.h"

namespace deepspeed::data {

DataLoader::DataLoader(std::shared_ptr<Dataset> dataset, std::size_t micro_batch_size, DistributedSampler sampler,
                       bool drop_last)
    : dataset_(std::move(dataset)), micro_batch_size_(micro_batch_size), sampler_(sampler), drop_last_(drop_last) {
  if (!dataset_) throw UsageError("DataLoader: dataset is null");
  if (micro_batch_size_ == 0) throw UsageError("DataLoader: micro_batch_size must be at least 1");
  if (sampler_.dataset_size() != dataset_->size()) {
    throw UsageError("DataLoader: the sampler was built for " + std::to_string(sampler_.dataset_size()) +
                     " samples but the dataset has " + std::to_string(dataset_->size()));
  }
}

std::size_t DataLoader::size() const {
  const std::size_t n = sampler_.num_samples();
  return drop_last_ ? n / micro_batch_size_ : (n + micro_batch_size_ - 1) / micro_batch_size_;
}

void DataLoader::set_epoch(std::uint64_t epoch) {
  sampler_.set_epoch(epoch);
  epoch_started_ = false;
}

DataLoader::Iterator DataLoader::begin() {
  if (epoch_started_) sampler_.set_epoch(sampler_.epoch() + 1);
  epoch_started_ = true;
  auto indices = std::make_shared<const std::vector<std::size_t>>(sampler_.indices());
  return Iterator(this, std::move(indices), size());
}

Example DataLoader::load(std::span<const std::size_t> indices) {
  if (on_batch_) on_batch_();
  Example batch = dataset_->get_batch(indices);
  if (pin_memory_ && at::hasCUDA()) {
    if (batch.data.defined() && batch.data.is_cpu()) batch.data = batch.data.pin_memory();
    if (batch.target.defined() && batch.target.is_cpu()) batch.target = batch.target.pin_memory();
  }
  return batch;
}

DataLoader::Iterator::Iterator(DataLoader* loader, std::shared_ptr<const std::vector<std::size_t>> indices,
                               std::size_t num_batches)
    : loader_(loader), indices_(std::move(indices)), num_batches_(num_batches) {
  if (num_batches_ > 0) load_current();
}

DataLoader::Iterator& DataLoader::Iterator::operator++() {
  ++batch_index_;
  if (batch_index_ < num_batches_) load_current();
  else current_.reset();
  return *this;
}

void DataLoader::Iterator::load_current() {
  const std::size_t mbs = loader_->micro_batch_size_;
  const std::size_t first = batch_index_ * mbs;
  const std::size_t count = std::min(mbs, indices_->size() - first);
  // A fresh Example per batch: copies of this iterator keep the batch they were made at.
  current_ = std::make_shared<Example>(loader_->load(std::span(*indices_).subspan(first, count)));
}

}  // namespace deepspeed::data
