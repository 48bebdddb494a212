// make_strategy(): the one place that turns zero_optimization.stage (and the precision) into a layout.
#include <cstdlib>
#include <string>

#include "deepspeed/util/error.h"
#include "deepspeed/util/logging.h"
#include "deepspeed/util/strings.h"
#include "deepspeed/zero/init.h"
#include "deepspeed/zero/memory_estimate.h"
#include "src/zero/strategies.h"
#include "src/util/env.h"

namespace deepspeed::zero {

using util::cat;

namespace {

std::optional<at::ScalarType> to_scalar_type(std::optional<config::DType> d) {
  if (!d) return std::nullopt;
  switch (*d) {
    case config::DType::kFloat16: return at::kHalf;
    case config::DType::kBFloat16: return at::kBFloat16;
    case config::DType::kFloat32: return at::kFloat;
  }
  return std::nullopt;
}

// Offload asks for host memory per rank, and every rank of the node asks at once: refuse before allocating
// anything when the node cannot hold it, rather than be killed by the OOM killer minutes later. Checked once
// here on the parameter list, and again by the layout on its own flat groups (at stage 3 the units' buckets
// round `ratio` differently) before it allocates the offloaded state.
void check_host_memory(const config::Config& c, const ModelShape& shape, const comm::Communicator& comm,
                       std::int64_t held = 0) {
  if (auto error = host_memory_shortfall(c, shape, comm.world_size(), comm.env().local_size,
                                         host_memory_available(), held)) {
    throw UsageError(*error);
  }
}

// DS_OFFLOAD_GRAD_ACCUMULATION: "host" or "device" overrides where an offloaded window accumulates.
std::optional<bool> accumulation_on_device_requested() {
  const char* value = std::getenv("DS_OFFLOAD_GRAD_ACCUMULATION");
  if (!value || !*value) return std::nullopt;
  const std::string v(value);
  if (v == "device") return true;
  if (v == "host") return false;
  throw UsageError(cat("DS_OFFLOAD_GRAD_ACCUMULATION: expected \"host\" or \"device\", got \"", v, "\""));
}

// DS_REDUCTIONS_IN_FLIGHT=N: the reducer's bound on bucket reductions in flight (ReducerOptions), for
// measuring what the bound saves (0: every bucket held to the end of backward). Unset: the default.
std::optional<std::size_t> reductions_in_flight_requested() {
  const char* value = std::getenv("DS_REDUCTIONS_IN_FLIGHT");
  if (!value || !*value) return std::nullopt;
  const std::string v(value);
  if (v.find_first_not_of("0123456789") != std::string::npos || v.size() > 6) {
    throw UsageError(cat("DS_REDUCTIONS_IN_FLIGHT: expected a count of buckets (0 or more), got \"", v, "\""));
  }
  return static_cast<std::size_t>(std::stoul(v));
}

bool reference_reducer_requested() {
  return util::env_is("DS_REFERENCE_REDUCER");
}

}  // namespace

at::ScalarType model_dtype(const config::Config& c) {
  if (c.fp16.enabled) return at::kHalf;
  if (c.bf16.enabled) return at::kBFloat16;
  return at::kFloat;
}

LayoutChoice choose_layout(const config::Config& c) {
  LayoutChoice choice;
  choice.stage = c.zero.stage;
  choice.model_dtype = model_dtype(c);
  // DeepSpeed's data_types.grad_accum_dtype default: fp32 for bf16 without ZeRO, else the model's dtype.
  if (auto chosen = to_scalar_type(c.grad_accum_dtype)) {
    if (choice.model_dtype == at::kFloat && *chosen != at::kFloat) {
      throw ConfigError(cat(c.source, ": data_types.grad_accum_dtype: ", config::dtype_name(*c.grad_accum_dtype),
                            " gradient accumulation needs fp16 or bf16 training; this model trains in fp32"));
    }
    choice.accum_dtype = *chosen;
  } else {
    choice.accum_dtype = choice.model_dtype == at::kBFloat16 && c.zero.stage == 0 ? at::kFloat : choice.model_dtype;
  }
  choice.communication_dtype = to_scalar_type(c.communication_data_type).value_or(choice.accum_dtype);
  choice.bucket_numel = c.zero.stage == 0 ? std::min<std::int64_t>(c.zero.reduce_bucket_size, std::int64_t{1} << 23)
                                          : c.zero.reduce_bucket_size;
  if (c.zero.offload_optimizer.device == "cpu") {
    choice.offload_ratio = c.zero.offload_optimizer.ratio;
    choice.pin_memory = c.zero.offload_optimizer.pin_memory;
    // Stage 1 accumulates in its full device buffer anyway; stages 2-3 reduce every micro-step.
    choice.accumulate_on_device = accumulation_on_device_requested().value_or(
                                      c.batch.gradient_accumulation_steps > 1 && c.zero.offload_param.device == "none") &&
                                  c.zero.stage >= 2;
  }
  // The config rejects offload_param below stage 3 and "nvme".
  choice.offload_params = c.zero.stage == 3 && c.zero.offload_param.device == "cpu";
  choice.pin_params = c.zero.offload_param.pin_memory;
  return choice;
}

std::unique_ptr<Strategy> make_strategy(const config::Config& c, std::vector<std::vector<at::Tensor>> param_groups,
                                        std::shared_ptr<torch::nn::Module> module,
                                        std::shared_ptr<comm::Communicator> comm) {
  ModelShape shape;
  for (const auto& g : param_groups) {
    for (const auto& p : g) shape.numels.push_back(full_numel(p));
  }
  check_host_memory(c, shape, *comm);
  const LayoutChoice choice = choose_layout(c);
  LayoutInputs in{std::move(param_groups), std::move(module), comm,
                  c.zero.offload_optimizer.device == "cpu"
                      ? Placement::offloaded(comm->device(), choice.offload_ratio, choice.pin_memory)
                      : Placement::on_device(comm->device())};
  in.model_dtype = choice.model_dtype;
  in.reducer.accum_dtype = choice.accum_dtype;
  in.reducer.communication_dtype = choice.communication_dtype;
  in.reducer.prescale_gradients = c.prescale_gradients;
  in.reducer.gradient_predivide_factor = c.gradient_predivide_factor;
  in.reducer.accumulate_on_device = choice.accumulate_on_device;
  if (auto n = reductions_in_flight_requested()) in.reducer.reductions_in_flight = *n;
  in.bucket_numel = choice.bucket_numel;
  in.write_back_behind_forward = c.zero.offload_optimizer.super_offload;
  in.step_behind_forward = util::env_is("DS_STEP_BEHIND_FORWARD");
  if (in.step_behind_forward && c.zero.stage != 0) {
    log::print_rank0(cat("DS_STEP_BEHIND_FORWARD=1 acts at stage 0 only; at stage ", c.zero.stage,
                         " the optimizer step runs whole at the step"));
  }
  in.check_host_memory = [c, comm](const std::vector<std::vector<std::int64_t>>& groups, std::int64_t held) {
    ModelShape planned;
    planned.groups = groups;
    for (const auto& g : groups) planned.numels.insert(planned.numels.end(), g.begin(), g.end());
    check_host_memory(c, planned, *comm, held);
  };
  const bool reference = reference_reducer_requested();
  if (reference && (c.zero.stage != 0 || in.model_dtype != at::kFloat)) {
    throw UsageError("DS_REFERENCE_REDUCER=1 (the per-tensor all-reduce reference) supports fp32 stage 0 only");
  }
  switch (c.zero.stage) {
    case 0: {
      in.reducer.reduction = Reduction::kAllReduce;
      return std::make_unique<ReplicatedStrategy>(std::move(in), reference);
    }
    case 1:
    case 2:
      in.reducer.reduction = c.zero.stage == 1 ? Reduction::kReduceScatterOnBoundary : Reduction::kReduceScatterEachMicroStep;
      return std::make_unique<ShardedStrategy>(c.zero.stage, std::move(in));
    case 3: {
      in.reducer.reduction = Reduction::kReduceScatterEachMicroStep;
      PartitionOptions partition;
      partition.bucket_numel = choice.bucket_numel;
      partition.max_live_parameters = c.zero.stage3_max_live_parameters;
      partition.persistence_threshold = c.zero.stage3_param_persistence_threshold;
      partition.max_reuse_distance = c.zero.stage3_max_reuse_distance;
      partition.prefetch_numel = c.zero.stage3_prefetch_bucket_size;
      partition.offload = choice.offload_params;
      partition.pin_memory = choice.pin_params;
      return std::make_unique<PartitionedStrategy>(std::move(in), partition,
                                                   c.zero.stage3_gather_16bit_weights_on_model_save);
    }
  }
  throw ConfigError(cat(c.source, ": zero_optimization.stage: ", c.zero.stage, " is not a ZeRO stage (0, 1, 2, 3)"));
}

void check_optimizer_supported(const config::Config& c, bool client_optimizer) {
  // DeepSpeed's ZeRO is tested with Adam/AdamW, Adagrad and Lion (device and CPU versions); others need an
  // explicit opt-in.
  const std::string& type = c.optimizer.type;
  const bool tested = !client_optimizer && (type == "adam" || type == "adamw" || type == "adagrad" || type == "lion");
  if (c.zero.stage > 0 && !tested && !c.zero_allow_untested_optimizer) {
    throw ConfigError(cat(c.source, ": zero_allow_untested_optimizer: You are using an untested ZeRO Optimizer. "
                                    "Please add <\"zero_allow_untested_optimizer\": true> in the configuration file to use it."));
  }
}

std::string optimizer_creation_message(const config::Config& c) {
  if (c.zero.stage > 0) return cat("Creating ", model_dtype(c), " ZeRO stage ", c.zero.stage, " optimizer");
  if (c.fp16.enabled) {
    return c.fp16.loss_scale == 0 ? std::string("Creating fp16 optimizer with dynamic loss scale")
                                  : cat("Creating fp16 optimizer with static loss scale: ", util::py_float(c.fp16.loss_scale));
  }
  if (c.bf16.enabled) return "Creating BF16 optimizer";
  return "";
}

}  // namespace deepspeed::zero
