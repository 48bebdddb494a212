#include "deepspeed/zero/memory_estimate.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "deepspeed/zero/flat_group.h"
#include "deepspeed/zero/layout_choice.h"
#include "deepspeed/zero/placement.h"
#include "src/zero/step_speculation.h"

namespace deepspeed::zero {

namespace {

// fp32 tensors per master element the optimizer adds: Adam's and Lamb's two moments, SGD's momentum buffer,
// Adagrad's sum of squares, Lion's momentum.
std::int64_t optimizer_states(const config::OptimizerConfig& o) {
  if (o.type == "sgd") return o.momentum != 0.0 ? 1 : 0;
  if (o.type == "adagrad" || o.type == "lion") return 1;
  return o.amsgrad ? 3 : 2;
}

}  // namespace

MemoryEstimate estimate_model_states(const config::Config& c, const ModelShape& model, int world_size) {
  const LayoutChoice choice = choose_layout(c);
  const int stage = choice.stage;
  const auto m = static_cast<std::int64_t>(c10::elementSize(choice.model_dtype));
  const auto a = static_cast<std::int64_t>(c10::elementSize(choice.accum_dtype));
  const auto comm = static_cast<std::int64_t>(c10::elementSize(choice.communication_dtype));
  const std::int64_t k = optimizer_states(c.optimizer);
  const std::int64_t master_bytes = 4 * (1 + k);  // the fp32 master and its optimizer state
  const double ratio = choice.offload_ratio;
  // Each flat group is bucketed, padded and split by ratio on its own, as the layout does.
  std::int64_t total = 0;  // the flat buffers, padding included
  std::int64_t shard = 0;
  std::int64_t host = 0;   // elements of this rank's shard on the host
  std::int64_t host_send = 0, largest_host_bucket = 0;  // elements of the host buckets, whole (send buffers)
  std::int64_t largest_device_bucket = 0, device_send = 0;  // elements of the device buckets
  const FlatOptions flat{choice.bucket_numel, kAlignment, stage == 0 ? 1 : world_size};
  for (const auto& numels : model.groups.empty() ? std::vector<std::vector<std::int64_t>>{model.numels} : model.groups) {
    const BucketPlan plan = plan_group(numels, flat);
    total += plan.total_numel;
    shard += plan.shard_numel;
    const std::size_t offloaded = ratio > 0.0 ? offloaded_buckets(plan, ratio) : 0;
    for (std::size_t b = 0; b < offloaded; ++b) {
      host += plan.buckets[b].chunk;
      host_send += plan.buckets[b].numel;
      largest_host_bucket = std::max(largest_host_bucket, plan.buckets[b].numel);
    }
    for (std::size_t b = offloaded; b < plan.buckets.size(); ++b) {
      largest_device_bucket = std::max(largest_device_bucket, plan.buckets[b].numel);
      device_send += plan.buckets[b].numel;
    }
  }
  const std::int64_t on_device = shard - host;

  MemoryEstimate e;
  if (world_size > 1) {
    // Stages 2-3 stage every bucket in a send buffer; stages 0-1 send the accumulation buffer itself unless it
    // is cast to the communication dtype. Stages 1-3 receive this rank's chunk in a buffer of its own.
    const bool sends_copy = stage >= 2 || a != comm;
    auto send_bytes = [&](std::int64_t numel) {
      return numel * (sends_copy ? comm : 0) + (stage >= 1 ? numel / world_size * comm : 0);
    };
    e.reductions_in_flight = std::min(static_cast<std::int64_t>(kReductionsInFlight + 1) * send_bytes(largest_device_bucket),
                                      send_bytes(device_send));
  }
  switch (stage) {
    case 0: {
      e.weights = total * m;
      // One rank, no accumulation: FusedAdam reads autograd's 16-bit gradients as they are, and the fp32
      // buffer is never allocated (BucketReducer::allow_gradients_as_they_are).
      const auto& o = c.optimizer;
      const bool as_they_are = world_size == 1 && c.batch.gradient_accumulation_steps == 1 && m == 2 && a == 4 &&
                               c.gradient_predivide_factor == 1.0 && (o.type == "adam" || o.type == "adamw") &&
                               !o.torch_adam && !o.amsgrad;
      e.gradients = total * (as_they_are ? m : a);
      e.optimizer = total * (m == 4 ? 4 * k : master_bytes);  // an fp32 model is its own master
      break;
    }
    case 1:
      e.weights = total * m;
      e.gradients = total * a;  // the full local buffer; the shard exists only at the step
      break;
    case 2:
      e.weights = total * m;
      e.gradients = on_device * a;
      break;
    default:
      e.weights = (choice.offload_params ? 0 : shard * m) + std::min(model.largest_unit, total) * m;
      e.host_weights = choice.offload_params ? shard * m : 0;
      e.gradients = on_device * a;
      break;
  }
  if (stage > 0) {
    e.optimizer = on_device * master_bytes;
    e.host_optimizer = host * master_bytes;
    e.host_gradients = host * a;
    // A 16-bit model's offloaded masters are uploaded through 16-bit copies; stages 2-3 reduce every
    // micro-step, and a micro-step after the first either lands beside the shard before it is added in, or
    // is summed in a device window.
    const bool landing = stage >= 2 && !choice.accumulate_on_device && c.batch.gradient_accumulation_steps > 1;
    // Under offload_param the 16-bit copies are the host weight shard itself.
    const bool copies = m == 2 && !choice.offload_params;
    e.host_transfer = host * ((copies ? m : 0) + (landing ? comm : 0));
    // The CPU optimizer steps the host buckets itself (16-bit model, DeepSpeedCPUAdam) and, when clipping
    // would make it wait, speculates (step_speculation.h).
    const bool speculates = c.zero.offload_optimizer.super_offload && c.gradient_clipping > 0.0 &&
                            !c.fp16.enabled && m == 2 && host > 0 &&
                            (c.optimizer.type == "adam" || c.optimizer.type == "adamw");
    if (speculates) e.host_speculation = 3 * 4 * speculation_backup_numel(host);
    if (choice.accumulate_on_device) e.gradients += host * a;
    if (stage >= 2) e.landing_lead = std::min(landing_cap(kLandingLeadBytes, largest_host_bucket * comm), host_send * comm);
  }
  return e;
}

std::optional<std::string> host_memory_shortfall(const config::Config& c, const ModelShape& model, int world_size,
                                                 int local_ranks, std::int64_t available, std::int64_t held) {
  if (c.zero.offload_optimizer.device == "none" && c.zero.offload_param.device == "none") return std::nullopt;
  const std::int64_t per_rank = estimate_model_states(c, model, world_size).host_total();
  const std::int64_t node = per_rank * local_ranks;
  if (available < 0 || (per_rank - held) * local_ranks <= available) return std::nullopt;
  const char* key = c.zero.offload_optimizer.device == "none" ? "offload_param" : "offload_optimizer";
  std::ostringstream out;
  out << c.source << ": zero_optimization." << key << ": the " << local_ranks << " rank(s) on this node need "
      << gib(node) << " of host memory for the offloaded state (" << gib(per_rank)
      << " each; see deepspeed_estimate), but " << gib(available)
      << " is available; lower offload_optimizer.ratio or use more nodes";
  return out.str();
}

std::string gib(std::int64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f GiB", static_cast<double>(bytes) / (1 << 30));
  return text;
}

std::int64_t host_memory_available() {
  std::ifstream meminfo("/proc/meminfo");
  std::string line;
  while (std::getline(meminfo, line)) {
    std::istringstream fields(line);
    std::string key;
    std::int64_t kib = 0;
    if (fields >> key >> kib && key == "MemAvailable:") return kib * 1024;
  }
  return -1;
}

}  // namespace deepspeed::zero
