#pragma once
/// \file
/// Splits a dataset's indices across data-parallel ranks, with the same order and padding rules as
/// PyTorch's torch.utils.data.distributed.DistributedSampler (the sampler DeepSpeed's loader uses).
///
/// One epoch: take a permutation of [0, dataset_size) (torch.randperm with a CPU generator seeded
/// `seed + epoch`, or the identity without shuffle); make its length a multiple of num_replicas, either by
/// repeating indices from its start (the default: the first few samples appear twice in the epoch) or, with
/// drop_last, by cutting the tail; rank r then takes every num_replicas-th index starting at r. Every rank
/// gets the same number of samples, so collectives stay in step.

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace deepspeed::data {

/// Samples each rank receives per epoch: ceil(dataset_size / num_replicas), or with drop_last
/// floor(dataset_size / num_replicas). Requires num_replicas > 0.
std::size_t samples_per_replica(std::size_t dataset_size, std::size_t num_replicas, bool drop_last);

/// Returns `order` cut or cyclically extended to exactly `total_size` entries: entry i is
/// order[i % order.size()]. Requires order to be non-empty unless total_size is 0.
std::vector<std::size_t> pad_or_trim(std::span<const std::size_t> order, std::size_t total_size);

/// The slice of `padded` that `rank` owns: padded[rank], padded[rank + num_replicas], ...
/// Requires rank < num_replicas.
std::vector<std::size_t> stride_for_rank(std::span<const std::size_t> padded, std::size_t rank,
                                         std::size_t num_replicas);

/// The permutation of [0, n) that torch.randperm(n, generator=g) returns after g.manual_seed(seed) on a CPU
/// generator, so that C++ and Python training runs see the same sample order.
std::vector<std::size_t> seeded_permutation(std::size_t n, std::uint64_t seed);

/// Per-rank index sampler; see the file comment for the exact order. Cheap to copy.
class DistributedSampler {
 public:
  /// Throws UsageError if num_replicas is 0 or rank >= num_replicas.
  DistributedSampler(std::size_t dataset_size, std::size_t num_replicas, std::size_t rank, bool shuffle = true,
                     std::uint64_t seed = 0, bool drop_last = false);

  /// Selects the shuffle of epoch `epoch` (the generator is seeded seed + epoch, wrapping modulo 2^64 as
  /// PyTorch's manual_seed does). Without shuffle the epoch has no effect on the order.
  void set_epoch(std::uint64_t epoch) { epoch_ = epoch; }
  std::uint64_t epoch() const { return epoch_; }

  /// This rank's dataset indices for the current epoch, num_samples() of them. Deterministic: the same
  /// (seed, epoch) gives the same list on every call and every rank agrees on the underlying permutation.
  std::vector<std::size_t> indices() const;

  /// Length of indices(): the same on every rank.
  std::size_t num_samples() const { return num_samples_; }
  /// num_samples() * num_replicas(): the epoch's length after padding or trimming.
  std::size_t total_size() const { return num_samples_ * num_replicas_; }

  std::size_t dataset_size() const { return dataset_size_; }
  std::size_t num_replicas() const { return num_replicas_; }
  std::size_t rank() const { return rank_; }
  bool shuffle() const { return shuffle_; }
  std::uint64_t seed() const { return seed_; }
  bool drop_last() const { return drop_last_; }

 private:
  std::size_t dataset_size_;
  std::size_t num_replicas_;
  std::size_t rank_;
  bool shuffle_;
  std::uint64_t seed_;
  bool drop_last_;
  std::size_t num_samples_;
  std::uint64_t epoch_ = 0;
};

}  // namespace deepspeed::data
