#pragma once
// Internal: the engine's own checkpoint parts (the ZeRO layout is the other one, zero::Strategy). Each writes
// and reads its entries of DeepSpeed's files (checkpoint/state.h); Engine::save_checkpoint/load_checkpoint
// loop over them (EngineImpl::checkpoint_parts() gives the order).
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/nn/module.h>

#include "deepspeed/checkpoint/state.h"
#include "deepspeed/comm/communicator.h"
#include "deepspeed/optim/optimizer.h"
#include "deepspeed/zero/strategy.h"

namespace deepspeed {

struct StepCounters;

/// The module's parameters and buffers on rank 0's CPU (empty elsewhere), in the module's order. Collective:
/// units are gathered one at a time, so no rank holds more than one unit beyond what it keeps anyway.
std::vector<std::pair<std::string, at::Tensor>> gather_module_state(torch::nn::Module& module, zero::Strategy& zero,
                                                                    const comm::Communicator& comm);

/// "module" (parameters and buffers) and "buffer_names". Loading copies into the existing tensors, unit by
/// unit, and lets the layout adopt the values (shards, fp32 masters).
std::unique_ptr<checkpoint::Stateful> module_weights_part(std::shared_ptr<torch::nn::Module> module,
                                                          zero::Strategy& zero, const comm::Communicator& comm);

/// The optimizer's state dict, where the layout keeps it; restored with the optimizer states.
std::unique_ptr<checkpoint::Stateful> optimizer_part(optim::Optimizer& optimizer, zero::Strategy& zero);

/// A state kept as one JSON document under `key` of the model-states file (the loss scaler, the LR schedule).
/// `save` returning nullopt writes None; `load` is called when `restore(options)` says so and the entry is not
/// None.
struct JsonPart {
  std::string key;
  std::function<std::optional<nlohmann::json>()> save;
  std::function<void(const nlohmann::json&)> load;
  std::function<bool(const checkpoint::LoadOptions&)> restore;
};
std::unique_ptr<checkpoint::Stateful> json_part(JsonPart part);

/// global_steps, global_samples, skipped_steps, micro_steps, dp_world_size, mp_world_size; restored unless
/// load_module_only (micro_steps then restarts at global_steps × GAS).
std::unique_ptr<checkpoint::Stateful> counters_part(StepCounters& counters, std::int64_t gradient_accumulation_steps,
                                                    int world_size);

/// Top-level model-states keys the parts write; any other key is the program's client_state.
bool is_engine_key(const std::string& key);

}  // namespace deepspeed
