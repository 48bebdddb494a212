#pragma once
/// \file
/// Pure arithmetic for laying parameters out in a flat buffer, cutting it into communication buckets, and
/// sharding each bucket across data-parallel ranks. No tensors, no communication: tested anywhere.
///
/// The bucket is the unit of communication and of sharding: bucket b holds `numel` elements (a multiple of
/// world_size × alignment, padding included) and rank r owns the contiguous chunk
/// [offset + r·chunk, offset + (r+1)·chunk) of it, chunk = numel / world_size. Rank r's shard is the
/// concatenation of its chunks of every bucket, so a bucket's reduce-scatter lands in one contiguous slice of
/// the shard and its all-gather reads one. Parameter sizes need not divide by anything.

#include <cstddef>
#include <cstdint>
#include <vector>

namespace deepspeed::zero {

/// Elements every parameter and every chunk starts on a multiple of (64 bytes of fp32): vectorized kernels and
/// NCCL get aligned addresses. Checkpoints record it, so a later change still loads old shards.
inline constexpr std::int64_t kAlignment = 16;
/// ZeRO-Offload: the default bound on send buffers of host-bound buckets held at once in backward
/// (ReducerOptions::landing_lead_bytes; at least two of the largest such buckets).
inline constexpr std::int64_t kLandingLeadBytes = std::int64_t{512} << 20;
/// The landing lead in force: `lead_bytes`, or two of the largest host buckets if more (one landing while the
/// next fills, or backward would wait for every landing in turn). The reducer's cap and the estimate's figure.
inline std::int64_t landing_cap(std::int64_t lead_bytes, std::int64_t largest_host_bucket_bytes) {
  return lead_bytes > 2 * largest_host_bucket_bytes ? lead_bytes : 2 * largest_host_bucket_bytes;
}
/// Several ranks: the default number of device buckets whose reduction may be in flight at once
/// (ReducerOptions::reductions_in_flight); with the one being filled, the send buffers backward holds.
inline constexpr std::size_t kReductionsInFlight = 2;

struct BucketPlan {
  struct Bucket {
    std::int64_t offset = 0;           ///< first element of the bucket in the flat buffer
    std::int64_t numel = 0;            ///< elements, padding included; a multiple of world_size × alignment
    std::int64_t chunk = 0;            ///< numel / world_size: what each rank owns of it
    std::int64_t shard_offset = 0;     ///< where this bucket's chunk starts inside every rank's shard
    std::vector<std::size_t> members;  ///< indices (into the caller's list) of the parameters in it
  };
  std::vector<Bucket> buckets;        ///< tile [0, total_numel) in order
  std::vector<std::int64_t> offset;   ///< per parameter: first element in the flat buffer
  std::vector<std::size_t> bucket_of; ///< per parameter: its bucket
  std::int64_t total_numel = 0;       ///< flat buffer length
  std::int64_t shard_numel = 0;       ///< every rank's shard length (sum of chunks)
  int world_size = 1;

  /// The part of parameter i (numel n) that falls in rank r's shard, in flat coordinates: [begin, end),
  /// empty (begin == end) if none. Used to map shards back to parameters (checkpoints, consolidation).
  struct Range {
    std::int64_t begin = 0, end = 0;
  };
  Range owned_part(std::size_t param, std::int64_t numel, int rank) const;
  /// Flat offset → offset in the owning rank's shard, and that rank.
  std::int64_t shard_position(std::int64_t flat_offset, int* rank) const;
};

/// Lays out parameters with the given element counts in `order` (a permutation of their indices: the order
/// gradients are expected to become ready, i.e. roughly reverse registration order), each starting at a
/// multiple of `alignment` elements, and groups consecutive ones into buckets of at most `bucket_capacity`
/// elements (before padding). A parameter larger than the capacity gets a bucket of its own.
BucketPlan plan_buckets(const std::vector<std::int64_t>& numels, const std::vector<std::size_t>& order,
                        std::int64_t bucket_capacity, std::int64_t alignment = kAlignment, int world_size = 1);

/// `x` rounded up to a multiple of `multiple` (> 0).
constexpr std::int64_t round_up(std::int64_t x, std::int64_t multiple) { return (x + multiple - 1) / multiple * multiple; }

}  // namespace deepspeed::zero
