// deepspeed::initialize(): builds the engine's parts in DeepSpeed's order and prints its start-up lines.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "deepspeed/deepspeed.h"
#include "deepspeed/util/logging.h"
#include "src/engine/engine_impl.h"
#include "src/engine/module_sync.h"

#ifndef DS_GIT_HASH
#define DS_GIT_HASH "unknown"
#endif
#ifndef DS_GIT_BRANCH
#define DS_GIT_BRANCH "unknown"
#endif
#ifndef DS_VERSION
#define DS_VERSION "0.0.0"
#endif

namespace deepspeed {

using util::cat;

namespace {

config::Config load_config(const Arguments& args, const InitializeOptions& options, int world_size) {
  if (options.config && !args.deepspeed_config.empty()) {
    throw UsageError("Not sure how to proceed, we were given deepspeed configs in the deepspeed arguments "
                     "(--deepspeed_config) and deepspeed::initialize() function call (InitializeOptions::config)");
  }
  if (options.config) return config::parse_config(*options.config, "<config>", world_size);
  if (args.deepspeed_config.empty()) {
    throw UsageError("DeepSpeed requires --deepspeed_config to specify configuration file");
  }
  return config::parse_config(config::load_json_file(args.deepspeed_config), args.deepspeed_config, world_size);
}

void check_supported(const config::Config& c) {
  if (c.fp16.enabled) {
    throw ConfigError(cat(c.source, ": fp16.enabled: fp16 training is not supported yet by deepspeed.cpp"));
  }
  if (c.bf16.enabled) {
    throw ConfigError(cat(c.source, ": bf16.enabled: bf16 training is not supported yet by deepspeed.cpp"));
  }
}

std::optional<at::ScalarType> to_scalar_type(std::optional<config::DType> d) {
  if (!d) return std::nullopt;
  switch (*d) {
    case config::DType::kFloat16: return at::kHalf;
    case config::DType::kBFloat16: return at::kBFloat16;
    case config::DType::kFloat32: return at::kFloat;
  }
  return std::nullopt;
}

std::unique_ptr<zero::GradientReducer> make_reducer(const config::Config& c, std::vector<at::Tensor> params,
                                                    std::shared_ptr<comm::Communicator> comm) {
  zero::ReducerOptions options;
  // Stage 0 overlaps its all-reduce with backward (DeepSpeed's does not); a bucket the size of DeepSpeed's
  // 5e8-element default would leave nothing to overlap, so cap it unless the user chose a smaller one.
  options.bucket_numel = std::min<std::int64_t>(c.zero.reduce_bucket_size, std::int64_t{1} << 23);
  options.prescale_gradients = c.prescale_gradients;
  options.gradient_predivide_factor = c.gradient_predivide_factor;
  options.communication_dtype = to_scalar_type(c.communication_data_type);
  const char* reference = std::getenv("DS_REFERENCE_REDUCER");
  if (reference && std::string(reference) == "1") {
    return std::make_unique<zero::NaiveAllReduce>(std::move(params), std::move(comm), options);
  }
  return std::make_unique<zero::BucketedAllReduce>(std::move(params), std::move(comm), options);
}

}  // namespace

Initialized initialize_module(const Arguments& args, torch::nn::AnyModule any_module,
                              std::shared_ptr<torch::nn::Module> module, std::vector<at::Tensor> model_parameters,
                              std::shared_ptr<data::Dataset> training_data, InitializeOptions options) {
  install_error_handler();
  auto comm = comm::init_distributed();
  if (const int given = args.given_local_rank(); given >= 0 && given != comm->local_rank()) {
    throw UsageError(cat("Mismatch in local rank setting, --local_rank=", given, " but env['LOCAL_RANK']=",
                         comm->local_rank()));
  }
  DS_LOG_DIST(kInfo, "DeepSpeed info: version=", DS_VERSION, ", git-hash=", DS_GIT_HASH, ", git-branch=", DS_GIT_BRANCH);
  config::Config cfg = load_config(args, options, comm->world_size());
  for (const auto& warning : cfg.warnings) DS_LOG_DIST(kWarning, warning);
  check_supported(cfg);

  module->to(comm->device());
  broadcast_module_state(*module, *comm);

  // Parameter groups: explicit ones, else one group of the given (trainable) parameters.
  std::vector<optim::ParamGroup> groups = std::move(options.param_groups);
  if (groups.empty()) groups.push_back(optim::ParamGroup{std::move(model_parameters), {}});
  std::vector<at::Tensor> trainable;
  for (auto& g : groups) {
    std::erase_if(g.params, [](const at::Tensor& p) { return !p.requires_grad(); });
    trainable.insert(trainable.end(), g.params.begin(), g.params.end());
  }

  std::shared_ptr<optim::Optimizer> optimizer;
  if (options.optimizer) {
    optimizer = options.optimizer(std::move(groups));
    DS_LOG_DIST(kInfo, "Using client callable to create basic optimizer");
  } else if (!cfg.optimizer.type.empty()) {
    optimizer = optim::make_optimizer(cfg.optimizer, std::move(groups));
    DS_LOG_DIST(kInfo, "Using DeepSpeed Optimizer param name ", cfg.optimizer.type, " as basic optimizer");
  } else {
    throw ConfigError(cat(cfg.source, ": optimizer: missing; add an \"optimizer\" section or pass "
                                      "InitializeOptions::optimizer"));
  }
  DS_LOG_DIST(kInfo, "DeepSpeed Basic Optimizer = ", optimizer->name());
  DS_LOG_DIST(kInfo, "DeepSpeed Final Optimizer = ", optimizer->name());

  std::shared_ptr<optim::LRScheduler> scheduler;
  if (!cfg.scheduler.type.empty()) {
    scheduler = optim::make_scheduler(cfg.scheduler, *optimizer);
    DS_LOG_DIST(kInfo, "DeepSpeed using configured LR scheduler = ", cfg.scheduler.type);
  }

  EngineImpl::Parts parts;
  parts.reducer = make_reducer(cfg, trainable, comm);
  parts.config = std::move(cfg);
  parts.comm = comm;
  parts.any_module = std::move(any_module);
  parts.module = module;
  parts.trainable = std::move(trainable);
  parts.optimizer = optimizer;
  parts.scheduler = scheduler;
  parts.has_dataloader = training_data != nullptr;
  auto impl = std::make_shared<EngineImpl>(std::move(parts));

  std::shared_ptr<data::DataLoader> loader;
  if (training_data) {
    data::DistributedSampler sampler(training_data->size(), comm->world_size(), comm->rank(), /*shuffle=*/true,
                                     options.data_seed);
    loader = std::make_shared<data::DataLoader>(training_data, impl->config.batch.micro_batch_per_gpu, sampler);
    std::weak_ptr<EngineImpl> weak = impl;
    loader->on_batch([weak] {
      if (auto e = weak.lock()) e->on_batch_fetched();
    });
  }

  if (comm->rank() == 0) {
    for (const auto& line : config::dump_lines(impl->config)) DS_LOG(kInfo, line);
  }
  impl->report_progress(0);
  return Initialized{Engine(impl), optimizer, loader, scheduler};
}

}  // namespace deepspeed
