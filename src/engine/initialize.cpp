// deepspeed::initialize(): builds the engine's parts in DeepSpeed's order and prints its start-up lines.
#include <map>
#include <set>

#include <ATen/ATen.h>
#include <torch/nn/modules/container/sequential.h>
#include <c10/core/GradMode.h>

#include "deepspeed/deepspeed.h"
#include "deepspeed/util/logging.h"
#include "src/engine/engine_impl.h"
#include "deepspeed/zero/init.h"
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

std::optional<at::ScalarType> to_scalar_type(std::optional<config::DType> d) {
  if (!d) return std::nullopt;
  switch (*d) {
    case config::DType::kFloat16: return at::kHalf;
    case config::DType::kBFloat16: return at::kBFloat16;
    case config::DType::kFloat32: return at::kFloat;
  }
  return std::nullopt;
}

at::ScalarType model_dtype_of(const config::Config& c) {
  if (c.fp16.enabled) return at::kHalf;
  if (c.bf16.enabled) return at::kBFloat16;
  return at::kFloat;
}

// DeepSpeed's data_types.grad_accum_dtype default: fp32 for bf16 without ZeRO, else the model's dtype.
at::ScalarType accumulation_dtype(const config::Config& c, at::ScalarType model_dtype) {
  if (auto chosen = to_scalar_type(c.grad_accum_dtype)) {
    if (model_dtype == at::kFloat && *chosen != at::kFloat) {
      throw ConfigError(cat(c.source, ": data_types.grad_accum_dtype: ", config::dtype_name(*c.grad_accum_dtype),
                            " gradient accumulation needs fp16 or bf16 training; this model trains in fp32"));
    }
    return *chosen;
  }
  if (model_dtype == at::kBFloat16 && c.zero.stage == 0) return at::kFloat;
  return model_dtype;
}

struct GradientPath {
  std::int64_t bucket_numel = 0;
  std::vector<std::unique_ptr<zero::FlatGroup>> flat_groups;
  std::unique_ptr<zero::PartitionedParams> partitioned;
  std::unique_ptr<zero::GradientReducer> reducer;
  std::unique_ptr<precision::MasterParams> master;
  std::vector<std::vector<at::Tensor>> optimizer_params;
};

// A forward-only module that runs a Unit: what the children of a model's Sequentials are replaced with.
struct UnitModuleImpl : torch::nn::Module {
  explicit UnitModuleImpl(zero::Unit unit) : unit(std::move(unit)) {}
  at::Tensor forward(at::Tensor x) { return unit(x); }
  zero::Unit unit;
};

// ZeRO-3 units: those the model declared, else one per child of each outermost Sequential in the model
// (preorder, so in registration order). Each child in the Sequential's call list is re-pointed at a wrapper
// that runs it as a unit; the registered submodules (names, parameters) stay as they were.
std::vector<zero::Unit> find_units(const std::shared_ptr<torch::nn::Module>& module) {
  auto units = zero::Unit::claim(*module);
  if (!units.empty()) return units;
  std::set<const torch::nn::Module*> inside_wrapped;
  for (const auto& m : module->modules(/*include_self=*/true)) {
    if (inside_wrapped.count(m.get())) continue;
    auto sequential = std::dynamic_pointer_cast<torch::nn::SequentialImpl>(m);
    if (!sequential) continue;
    for (const auto& d : sequential->modules(/*include_self=*/false)) inside_wrapped.insert(d.get());
    for (auto& child : *sequential) {
      zero::Unit unit(child);
      units.push_back(unit);
      child = torch::nn::AnyModule(std::make_shared<UnitModuleImpl>(unit));
    }
  }
  zero::Unit::claim(*module);  // the wrappers were recorded too; they are ours now
  return units;
}

// ZeRO-3: partition every unit's parameters (unit 0 = the root, parameters in no unit).
GradientPath build_partitioned_path(const config::Config& c, const std::vector<std::vector<at::Tensor>>& groups,
                                    const std::shared_ptr<torch::nn::Module>& module, zero::ReducerOptions options,
                                    const std::shared_ptr<comm::Communicator>& comm) {
  GradientPath path;
  const auto units = find_units(module);
  std::map<const c10::TensorImpl*, std::pair<std::size_t, std::size_t>> where;  // param → (optimizer group, index)
  for (std::size_t g = 0; g < groups.size(); ++g) {
    for (std::size_t i = 0; i < groups[g].size(); ++i) where[groups[g][i].unsafeGetTensorImpl()] = {g, i};
  }
  std::vector<std::vector<std::vector<at::Tensor>>> unit_params(units.size() + 1,
                                                               std::vector<std::vector<at::Tensor>>(groups.size()));
  for (std::size_t u = 0; u < units.size(); ++u) {
    for (const auto& p : units[u].module()->parameters()) {
      auto it = where.find(p.unsafeGetTensorImpl());
      if (it == where.end()) continue;  // frozen, or already in an earlier unit
      unit_params[u + 1][it->second.first].push_back(p);
      where.erase(it);
    }
  }
  for (std::size_t g = 0; g < groups.size(); ++g) {
    for (const auto& p : groups[g]) {
      if (where.count(p.unsafeGetTensorImpl())) unit_params[0][g].push_back(p);
    }
  }
  zero::PartitionOptions partition;
  partition.bucket_numel = c.zero.reduce_bucket_size;
  partition.max_live_parameters = c.zero.stage3_max_live_parameters;
  partition.persistence_threshold = c.zero.stage3_param_persistence_threshold;
  partition.max_reuse_distance = c.zero.stage3_max_reuse_distance;
  partition.prefetch_numel = c.zero.stage3_prefetch_bucket_size;
  path.partitioned = std::make_unique<zero::PartitionedParams>(unit_params, comm, partition);
  // Frozen parameters zero::Init partitioned stay whole from here on (they take no part in ZeRO-3).
  const auto all = module->parameters();
  zero::materialize_presharded(all, comm->device(), all.empty() ? at::kFloat : all[0].scalar_type());
  for (std::size_t u = 0; u < units.size(); ++u) units[u].bind(path.partitioned.get(), u + 1);
  const auto raw = path.partitioned->groups();
  auto reducer = std::make_unique<zero::BucketReducer>(raw, comm, options);
  zero::PartitionedParams* partitioned = path.partitioned.get();
  reducer->on_group_done([partitioned, raw](std::size_t g) { partitioned->on_unit_gradients_done(raw[g]->unit); });
  path.reducer = std::move(reducer);
  path.master = std::make_unique<precision::MasterParams>(raw, 3, comm, partitioned);
  path.optimizer_params = path.master->optimizer_params(groups.size());
  path.bucket_numel = partition.bucket_numel;
  DS_LOG_DIST(kInfo, "ZeRO-3: ", units.size(), " units + root, ", raw.size(), " parameter groups");
  return path;
}

// Flat buffers, gradient reduction and master weights for the configured stage and precision.
GradientPath build_gradient_path(const config::Config& c, std::vector<std::vector<at::Tensor>> groups,
                                 at::ScalarType model_dtype, const std::shared_ptr<comm::Communicator>& comm,
                                 const std::shared_ptr<torch::nn::Module>& module) {
  GradientPath path;
  zero::ReducerOptions options;
  options.stage = c.zero.stage;
  options.accum_dtype = accumulation_dtype(c, model_dtype);
  options.communication_dtype = to_scalar_type(c.communication_data_type);
  options.prescale_gradients = c.prescale_gradients;
  options.gradient_predivide_factor = c.gradient_predivide_factor;
  const char* reference = std::getenv("DS_REFERENCE_REDUCER");
  if (reference && std::string(reference) == "1") {
    if (c.zero.stage != 0 || model_dtype != at::kFloat) {
      throw UsageError("DS_REFERENCE_REDUCER=1 (the per-tensor all-reduce reference) supports fp32 stage 0 only");
    }
    std::vector<at::Tensor> all;
    for (const auto& g : groups) all.insert(all.end(), g.begin(), g.end());
    path.reducer = std::make_unique<zero::NaiveAllReduce>(std::move(all), comm, options);
    path.optimizer_params = std::move(groups);
    return path;
  }
  if (c.zero.stage == 3) return build_partitioned_path(c, groups, module, options, comm);
  zero::FlatOptions flat;
  // Stage 0 overlaps its all-reduce with backward (DeepSpeed's does not); a bucket the size of DeepSpeed's
  // 5e8-element default would leave nothing to overlap, so cap it unless the user chose a smaller one.
  flat.bucket_numel = c.zero.stage == 0 ? std::min<std::int64_t>(c.zero.reduce_bucket_size, std::int64_t{1} << 23)
                                        : c.zero.reduce_bucket_size;
  flat.world_size = c.zero.stage == 0 ? 1 : comm->world_size();
  path.bucket_numel = flat.bucket_numel;
  const std::size_t num_groups = groups.size();
  path.flat_groups = zero::build_flat_groups(groups, flat);
  std::vector<zero::FlatGroup*> raw;
  for (auto& g : path.flat_groups) raw.push_back(g.get());
  path.reducer = std::make_unique<zero::BucketReducer>(raw, comm, options);
  path.master = std::make_unique<precision::MasterParams>(raw, c.zero.stage, comm);
  path.optimizer_params = path.master->optimizer_params(num_groups);
  return path;
}

void check_zero_optimizer(const config::Config& c, bool client_optimizer) {
  // DeepSpeed's ZeRO is tested with Adam-style optimizers; others need an explicit opt-in.
  const bool tested = !client_optimizer && (c.optimizer.type == "adam" || c.optimizer.type == "adamw");
  if (c.zero.stage > 0 && !tested && !c.zero_allow_untested_optimizer) {
    throw ConfigError(cat(c.source, ": zero_allow_untested_optimizer: You are using an untested ZeRO Optimizer. "
                                    "Please add <\"zero_allow_untested_optimizer\": true> in the configuration file to use it."));
  }
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
  const at::ScalarType model_dtype = model_dtype_of(cfg);

  module->to(comm->device());
  if (model_dtype != at::kFloat) {
    // Only floating-point tensors change dtype (Module::to would also turn integer buffers such as
    // BatchNorm's num_batches_tracked into floats); DeepSpeed's module.half()/bfloat16() does the same.
    at::NoGradGuard no_grad;
    for (auto& p : module->parameters()) {
      if (p.is_floating_point()) p.set_data(p.detach().to(model_dtype));
    }
    for (auto& b : module->buffers()) {
      if (b.is_floating_point()) b.set_data(b.detach().to(model_dtype));
    }
  }
  // zero::Init partitioned units as they were built; stages 0-2 keep every parameter whole.
  if (cfg.zero.stage != 3) zero::materialize_presharded(module->parameters(), comm->device(), model_dtype);
  broadcast_module_state(*module, *comm);

  // Parameter groups: explicit ones, else one group of the given parameters; frozen ones are left alone.
  std::vector<optim::ParamGroup> user_groups = std::move(options.param_groups);
  if (user_groups.empty()) user_groups.push_back(optim::ParamGroup{std::move(model_parameters), {}});
  std::vector<std::vector<at::Tensor>> trainable;
  for (auto& g : user_groups) {
    std::erase_if(g.params, [](const at::Tensor& p) { return !p.requires_grad(); });
    trainable.push_back(g.params);
  }
  check_zero_optimizer(cfg, static_cast<bool>(options.optimizer));
  GradientPath path = build_gradient_path(cfg, std::move(trainable), model_dtype, comm, module);
  std::vector<optim::ParamGroup> groups;
  for (std::size_t i = 0; i < user_groups.size(); ++i) {
    groups.push_back(optim::ParamGroup{path.optimizer_params[i], user_groups[i].hyper, user_groups[i].overrides});
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
  if (cfg.zero.stage > 0) {
    DS_LOG_DIST(kInfo, "Creating ", model_dtype, " ZeRO stage ", cfg.zero.stage, " optimizer");
  } else if (cfg.fp16.enabled) {
    DS_LOG_DIST(kInfo, cfg.fp16.loss_scale == 0 ? std::string("Creating fp16 optimizer with dynamic loss scale")
                                                : cat("Creating fp16 optimizer with static loss scale: ",
                                                      util::py_float(cfg.fp16.loss_scale)));
  } else if (cfg.bf16.enabled) {
    DS_LOG_DIST(kInfo, "Creating BF16 optimizer");
  }
  DS_LOG_DIST(kInfo, "DeepSpeed Final Optimizer = ", optimizer->name());

  std::shared_ptr<optim::LRScheduler> scheduler;
  if (!cfg.scheduler.type.empty()) {
    scheduler = optim::make_scheduler(cfg.scheduler, *optimizer);
    DS_LOG_DIST(kInfo, "DeepSpeed using configured LR scheduler = ", cfg.scheduler.type);
  }

  EngineImpl::Parts parts;
  parts.config = std::move(cfg);
  parts.comm = comm;
  parts.any_module = std::move(any_module);
  parts.module = module;
  parts.model_dtype = model_dtype;
  parts.flat_groups = std::move(path.flat_groups);
  parts.partitioned = std::move(path.partitioned);
  parts.reducer = std::move(path.reducer);
  parts.master = std::move(path.master);
  parts.optimizer = optimizer;
  parts.scheduler = scheduler;
  parts.has_dataloader = training_data != nullptr;
  parts.bucket_numel = path.bucket_numel;
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
