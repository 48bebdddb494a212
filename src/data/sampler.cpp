#include "deepspeed/data/sampler.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/randperm.h>

#include <string>

#include "deepspeed/util/error.h"

namespace deepspeed::data {

std::size_t samples_per_replica(std::size_t dataset_size, std::size_t num_replicas, bool drop_last) {
  if (num_replicas == 0) throw UsageError("DistributedSampler: num_replicas must be at least 1");
  // PyTorch writes the drop_last case as ceil((n - R) / R), which equals floor(n / R) when R does not
  // divide n (and is 0 when n < R); when R divides n both branches agree.
  return drop_last ? dataset_size / num_replicas : (dataset_size + num_replicas - 1) / num_replicas;
}

std::vector<std::size_t> pad_or_trim(std::span<const std::size_t> order, std::size_t total_size) {
  std::vector<std::size_t> out;
  if (total_size == 0) return out;
  if (order.empty()) throw UsageError("DistributedSampler: cannot pad an empty index list");
  out.reserve(total_size);
  // Cyclic repetition is what PyTorch's two padding branches (indices[:pad] when pad <= n, and
  // (indices * k)[:pad] otherwise) both amount to.
  for (std::size_t i = 0; i < total_size; ++i) out.push_back(order[i % order.size()]);
  return out;
}

std::vector<std::size_t> stride_for_rank(std::span<const std::size_t> padded, std::size_t rank,
                                         std::size_t num_replicas) {
  if (num_replicas == 0 || rank >= num_replicas) {
    throw UsageError("DistributedSampler: rank " + std::to_string(rank) + " is not in [0, " +
                     std::to_string(num_replicas) + ")");
  }
  std::vector<std::size_t> out;
  out.reserve(padded.size() / num_replicas + 1);
  for (std::size_t i = rank; i < padded.size(); i += num_replicas) out.push_back(padded[i]);
  return out;
}

std::vector<std::size_t> seeded_permutation(std::size_t n, std::uint64_t seed) {
  // Same steps as Python's `g = torch.Generator(); g.manual_seed(seed); torch.randperm(n, generator=g)`:
  // a fresh CPU generator re-seeded through set_current_seed, int64 output.
  at::Generator gen = at::detail::createCPUGenerator();
  gen.set_current_seed(seed);
  const at::Tensor perm = at::randperm(static_cast<int64_t>(n), gen, at::kLong);
  const int64_t* p = perm.data_ptr<int64_t>();
  return std::vector<std::size_t>(p, p + n);
}

DistributedSampler::DistributedSampler(std::size_t dataset_size, std::size_t num_replicas, std::size_t rank,
                                       bool shuffle, std::uint64_t seed, bool drop_last)
    : dataset_size_(dataset_size),
      num_replicas_(num_replicas),
      rank_(rank),
      shuffle_(shuffle),
      seed_(seed),
      drop_last_(drop_last),
      num_samples_(samples_per_replica(dataset_size, num_replicas, drop_last)) {
  if (rank >= num_replicas) {
    throw UsageError("DistributedSampler: rank " + std::to_string(rank) + " is not in [0, " +
                     std::to_string(num_replicas) + ")");
  }
}

std::vector<std::size_t> DistributedSampler::indices() const {
  std::vector<std::size_t> order;
  if (shuffle_) {
    order = seeded_permutation(dataset_size_, seed_ + epoch_);
  } else {
    order.resize(dataset_size_);
    for (std::size_t i = 0; i < dataset_size_; ++i) order[i] = i;
  }
  return stride_for_rank(pad_or_trim(order, total_size()), rank_, num_replicas_);
}

}  // namespace deepspeed::data
