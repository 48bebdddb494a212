#pragma once
/// \file
/// What a ZeRO layout holds per rank between steps, by kind and by place — DeepSpeed's
/// estimate_zero2/zero3_model_states_mem_needs, but from this engine's own layout: the bucket plan's padding,
/// the buffers each stage keeps, where offload puts each bucket. Pure arithmetic; no tensors.
///
/// Not counted in the totals: activations, the transient buffers of a step (send buffers of stages 2–3 — of
/// which `landing_lead` and `reductions_in_flight` bound —, the up-cast slices at the step, ZeRO-3 units while
/// gathered beyond the largest one), and the CUDA context; docs/zero.md "Memory" has what they came to on one H200.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "deepspeed/config/config.h"

namespace deepspeed::zero {

struct MemoryEstimate {
  // On the rank's device.
  std::int64_t weights = 0;         ///< model weights kept (all of them; stage 3: the shard and the largest unit; offload_param: the largest unit)
  std::int64_t gradients = 0;       ///< gradient buffers kept between steps (offload with GAS > 1: the device window)
  std::int64_t optimizer = 0;       ///< fp32 masters and optimizer state on the device
  // On the host, per rank.
  std::int64_t host_optimizer = 0;  ///< fp32 masters and optimizer state offloaded
  std::int64_t host_gradients = 0;  ///< gradient shards of the offloaded buckets (pinned: the copies land there)
  std::int64_t host_weights = 0;    ///< offload_param: the 16-bit weight shard (also the optimizer's copies)
  std::int64_t host_transfer = 0;   ///< pinned 16-bit weight copies, and the landing area of later micro-steps (accumulated on the host)
  std::int64_t host_speculation = 0;  ///< super_offload with clipping: the backup speculative updates save into
  // Transient, not in the totals: offload at stages 2-3, the most bytes of send buffers backward holds for the host
  // at once (kLandingLeadBytes or two of the largest host buckets; grad_reducer.h).
  std::int64_t landing_lead = 0;
  // Transient: on several ranks, the send buffers and reduce-scatter results of the device buckets whose
  // reduction is in flight (kReductionsInFlight, plus the one being launched, of the largest size; at most all).
  std::int64_t reductions_in_flight = 0;

  std::int64_t device_total() const { return weights + gradients + optimizer; }
  std::int64_t host_total() const {
    return host_weights + host_optimizer + host_gradients + host_transfer + host_speculation;
  }
};

/// The model as the estimate sees it: its trainable parameters' sizes (one entry per tensor, or a single
/// entry with the total when only that is known) and, for stage 3, the largest unit (elements gathered at once).
struct ModelShape {
  std::vector<std::int64_t> numels;
  std::int64_t largest_unit = 0;
  /// When known, the layout's flat groups (tensor sizes of each): buckets, padding and the offload ratio's
  /// rounding are per group (at stage 3 each unit × optimizer group is one). Empty: `numels` as one group.
  std::vector<std::vector<std::int64_t>> groups;
};

/// Per-rank model-state bytes for `config`'s stage, precision, optimizer and offload on `world_size` ranks.
MemoryEstimate estimate_model_states(const config::Config& config, const ModelShape& model, int world_size);

/// Offload's host-memory check: every one of the node's `local_ranks` ranks will hold
/// estimate_model_states(...).host_total(), of which it holds `held` bytes already (no longer in `available`).
/// The one-line error naming the key and the figures when the rest exceeds `available` bytes; nullopt when it
/// fits, nothing is offloaded, or `available` is unknown (< 0).
std::optional<std::string> host_memory_shortfall(const config::Config& config, const ModelShape& model,
                                                 int world_size, int local_ranks, std::int64_t available,
                                                 std::int64_t held = 0);

/// "12.34 GiB".
std::string gib(std::int64_t bytes);

/// Bytes of host memory the kernel reports available (MemAvailable), or -1 where it cannot be read.
std::int64_t host_memory_available();

}  // namespace deepspeed::zero
