#pragma once
/// \file
/// deepspeed::initialize() and what it takes and returns (DeepSpeed's deepspeed.initialize).

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <type_traits>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>

#include "deepspeed/arguments.h"
#include "deepspeed/config/config.h"
#include "deepspeed/data/dataloader.h"
#include "deepspeed/data/dataset.h"
#include "deepspeed/engine/engine.h"
#include "deepspeed/optim/lr_schedules.h"
#include "deepspeed/optim/optimizer.h"

namespace deepspeed {

/// Optional inputs of initialize() beyond the four positional ones (DeepSpeed's keyword arguments).
struct InitializeOptions {
  /// DeepSpeed's `config=`: the config as JSON instead of --deepspeed_config (giving both is an error).
  std::optional<config::Json> config;
  /// DeepSpeed's `optimizer=` callable: builds the optimizer from the parameter groups, overriding the JSON.
  std::function<std::unique_ptr<optim::Optimizer>(std::vector<optim::ParamGroup>)> optimizer;
  /// Parameter groups with their own hyperparameters; used instead of the flat parameter list when non-empty.
  std::vector<optim::ParamGroup> param_groups;
  /// Seed of the data loader's shuffle (DistributedSampler seed).
  std::uint64_t data_seed = 0;
};

/// What initialize() returns: (engine, optimizer, training_dataloader, lr_scheduler), as in DeepSpeed.
struct Initialized {
  Engine engine;
  std::shared_ptr<optim::Optimizer> optimizer;
  std::shared_ptr<data::DataLoader> training_dataloader;  ///< null unless training data was given
  std::shared_ptr<optim::LRScheduler> lr_scheduler;       ///< null unless the config has a scheduler
};

/// The non-template core of initialize(). Collective: every rank calls it once, with the same model structure.
/// Sets up distributed state, parses and validates the config (UsageError/ConfigError on bad input, exit code
/// 2 when uncaught), moves the module to this rank's device, broadcasts parameters and buffers from rank 0,
/// builds optimizer, scheduler, gradient reduction and data loader, and prints DeepSpeed's start-up lines.
Initialized initialize_module(const Arguments& args, torch::nn::AnyModule any_module,
                              std::shared_ptr<torch::nn::Module> module, std::vector<at::Tensor> model_parameters,
                              std::shared_ptr<data::Dataset> training_data, InitializeOptions options);

/// deepspeed.initialize(args, model, model_parameters, training_data). `model` is a module holder
/// (`Net net;`) or a std::shared_ptr to a module with one forward(). `training_data` may be omitted
/// (nullptr), a std::shared_ptr<data::Dataset>, or any dataset data::make_dataset() accepts.
template <typename Model, typename Data = std::nullptr_t>
Initialized initialize(const std::shared_ptr<Arguments>& args, Model model, std::vector<at::Tensor> model_parameters,
                       Data training_data = nullptr, InitializeOptions options = {}) {
  std::shared_ptr<torch::nn::Module> module;
  if constexpr (requires { model.ptr(); }) module = model.ptr();
  else module = model;
  std::shared_ptr<data::Dataset> dataset;
  if constexpr (!std::is_same_v<Data, std::nullptr_t>) dataset = data::make_dataset(std::move(training_data));
  return initialize_module(*args, torch::nn::AnyModule(model), std::move(module), std::move(model_parameters),
                           std::move(dataset), std::move(options));
}

}  // namespace deepspeed
