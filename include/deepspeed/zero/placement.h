#pragma once
/// \file
/// Where ZeRO keeps each kind of state it owns. The layouts (strategy.h) allocate their fp32 master weights
/// and gradient shards through a Placement and never ask where a tensor lives: ZeRO-Offload is a different
/// Placement, not a branch in every layout.
///
/// The unit of placement is the bucket (bucket_plan.h): a rank's chunk of bucket b — its fp32 master, the
/// optimizer state over it, its reduced gradient — lives either on the compute device or on the host. With
/// `offload_optimizer.ratio` r, the leading buckets of every group (the ones whose gradients backward
/// finishes first) go to the host until they hold a fraction r of the group's shard; the rest stay on the
/// device. A shard-shaped buffer is therefore stored as at most two pieces (ShardBuffer).
///
/// Optimizer state has no entry of its own: the optimizer creates its state beside the tensors it updates
/// (the master pieces) and load_state_dict moves saved state to them, so placing the masters places it.
/// Model weights, full gradient buffers and communication buffers always live on the compute device.
///
/// Allocation is local (no collective). A Placement is a value, cheap to copy.

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "deepspeed/zero/flat_group.h"
#include "deepspeed/zero/host_memory.h"

namespace deepspeed::zero {

enum class StateKind {
  kMasterWeights,   ///< fp32 copies the optimizer updates (and, with them, the optimizer state)
  kGradientShards,  ///< this rank's reduced gradients at stages 1–3 (pinned on the host: the copies land there)
  kParamCopies,     ///< 16-bit copies of offloaded masters, written by the CPU optimizer, uploaded to the device
  kTransfer,        ///< staging buffers of device↔host copies (pinned when offload asks for it)
};

/// A tensor laid out like a rank's shard of one FlatGroup — chunk b of every bucket b, in bucket order —
/// stored as contiguous pieces, each on the host or the device.
class ShardBuffer {
 public:
  struct Piece {
    std::size_t first_bucket = 0, end_bucket = 0;  ///< buckets [first, end) live in this piece
    std::int64_t begin = 0;                         ///< the piece's first element in shard coordinates
    at::Tensor tensor;
    bool host = false;                              ///< offloaded (on the CPU even when the device is too)
  };
  ShardBuffer() = default;
  ShardBuffer(const FlatGroup* group, std::vector<Piece> pieces) : group_(group), pieces_(std::move(pieces)) {}
  /// One piece holding `tensor` (the shard, or the whole flat buffer of a one-rank layout, where they agree).
  static ShardBuffer whole(const FlatGroup& group, at::Tensor tensor);

  const std::vector<Piece>& pieces() const { return pieces_; }
  bool defined() const { return !pieces_.empty(); }
  std::int64_t numel() const;
  /// Bucket b's chunk (a view into its piece).
  at::Tensor chunk(std::size_t bucket) const;
  /// The whole shard as one CPU tensor (copies; for checkpoints).
  at::Tensor to_cpu() const;
  /// Sets every piece from a whole-shard tensor (any device or dtype).
  void copy_from(const at::Tensor& whole) const;
  void zero_() const;
  /// Bytes of its pieces that are on the host.
  std::int64_t host_bytes() const;

 private:
  const FlatGroup* group_ = nullptr;
  std::vector<Piece> pieces_;
};

/// How many leading buckets of `plan` ZeRO-Offload puts on the host for `ratio`: whole buckets, while a
/// bucket's midpoint falls inside the offloaded fraction of the shard (ratio 1: all, 0: none).
std::size_t offloaded_buckets(const BucketPlan& plan, double ratio);

class Placement {
 public:
  /// Everything on `device` (the rank's GPU, or the CPU under Gloo).
  static Placement on_device(c10::Device device);
  /// ZeRO-Offload: the leading fraction `ratio` (0–1) of every group's shard on the host. `pinned`: gradient
  /// shards, copies and landing areas in page-locked memory (host_memory.h), so copies overlap with compute.
  static Placement offloaded(c10::Device device, double ratio, bool pinned);

  c10::Device device() const { return device_; }
  bool offloads() const { return ratio_ > 0.0; }
  /// Whether bucket b of `group` keeps its master, optimizer state and gradient shard on the host.
  bool on_host(const FlatGroup& group, std::size_t bucket) const;
  /// How many leading buckets of `group` are on the host (0 when nothing is offloaded).
  std::size_t host_buckets(const FlatGroup& group) const { return ratio_ > 0.0 ? offloaded_buckets(group.plan, ratio_) : 0; }
  /// The device of bucket b's state (the host's CPU or the compute device).
  c10::Device device_of(const FlatGroup& group, std::size_t bucket) const;

  /// A shard-shaped buffer of `group` for `kind` in `dtype`, zero-filled, pieces placed by bucket.
  /// kParamCopies and kTransfer buffers have host pieces only (none where nothing is offloaded).
  /// With `host_storage` (a shard-shaped host tensor of `dtype`), the host piece is a view of it instead of
  /// new memory, and keeps its values.
  ShardBuffer shard_buffer(const FlatGroup& group, StateKind kind, at::ScalarType dtype,
                           const at::Tensor& host_storage = {}) const;
  /// A flat tensor of `numel` for `kind` on the host, its own exact-size block: pinned when the placement pins,
  /// unless it holds master weights (which never cross the bus).
  at::Tensor host_tensor(StateKind kind, std::int64_t numel, at::ScalarType dtype) const;

 private:
  Placement(c10::Device device, double ratio, bool pinned) : device_(device), ratio_(ratio), pinned_(pinned) {}

  c10::Device device_;
  double ratio_ = 0.0;
  bool pinned_ = false;
};

}  // namespace deepspeed::zero
