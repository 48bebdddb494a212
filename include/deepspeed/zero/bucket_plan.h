#pragma once
/// \file
/// Pure arithmetic for laying parameters out in a flat buffer and cutting it into communication buckets.
/// No tensors, no communication: tested anywhere.

#include <cstddef>
#include <cstdint>
#include <vector>

namespace deepspeed::zero {

struct BucketPlan {
  struct Bucket {
    std::int64_t offset = 0;           ///< first element of the bucket in the flat buffer
    std::int64_t numel = 0;            ///< elements, including alignment gaps inside it
    std::vector<std::size_t> members;  ///< indices (into the caller's list) of the parameters in it
  };
  std::vector<Bucket> buckets;       ///< tile [0, total_numel) in order
  std::vector<std::int64_t> offset;   ///< per parameter: first element in the flat buffer
  std::vector<std::size_t> bucket_of; ///< per parameter: its bucket
  std::int64_t total_numel = 0;       ///< flat buffer length (a multiple of `alignment`)
};

/// Lays out parameters with the given element counts in `order` (a permutation of their indices: the order
/// gradients are expected to become ready, i.e. roughly reverse registration order), each starting at a
/// multiple of `alignment` elements, and groups consecutive ones into buckets of at most `bucket_capacity`
/// elements. A parameter larger than the capacity gets a bucket of its own. Buckets are contiguous ranges.
BucketPlan plan_buckets(const std::vector<std::int64_t>& numels, const std::vector<std::size_t>& order,
                        std::int64_t bucket_capacity, std::int64_t alignment = 16);

/// `x` rounded up to a multiple of `multiple` (> 0).
constexpr std::int64_t round_up(std::int64_t x, std::int64_t multiple) { return (x + multiple - 1) / multiple * multiple; }

}  // namespace deepspeed::zero
