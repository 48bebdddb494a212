// deepspeed::initialize(): builds the engine's parts in DeepSpeed's order and prints its start-up lines.
#include <cstdlib>
#include <string>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>

#include "deepspeed/initialize.h"
#include "deepspeed/engine/timers.h"
#include "deepspeed/optim/clip.h"
#include "deepspeed/optim/adagrad_lion.h"
#include "deepspeed/optim/cpu_adam.h"
#include "deepspeed/zero/init.h"
#include "deepspeed/zero/memory_estimate.h"
#include "deepspeed/util/error.h"
#include "deepspeed/util/logging.h"
#include "deepspeed/zero/strategy.h"
#include "src/engine/engine_impl.h"
#include "src/engine/module_sync.h"
#include "src/util/env.h"

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

// What the layout was estimated to hold against what it holds (rank 0's view; every rank holds the same).
void report_model_states(const config::Config& c, zero::ModelShape shape, const zero::Strategy& layout,
                         const optim::Optimizer& optimizer, const comm::Communicator& comm) {
  shape.largest_unit = layout.gathered_numel();  // stage 3 between steps: the root and persistent units
  shape.groups = layout.flat_group_numels();
  const auto e = zero::estimate_model_states(c, shape, comm.world_size());
  std::int64_t host = layout.host_bytes();
  for (const auto& group : optimizer.all_state()) {
    for (const auto& state : group) {
      for (const auto& [name, t] : state) {
        if (t.device().is_cpu()) host += t.numel() * static_cast<std::int64_t>(t.element_size());
      }
    }
  }
  const std::string measured_device =
      comm.device().is_cuda() ? zero::gib(engine::memory_allocated(comm.device())) : std::string("n/a on the CPU");
  DS_LOG_DIST(kInfo, "Model states per rank: estimated device ", zero::gib(e.device_total()), " (weights ",
              zero::gib(e.weights), ", gradients ", zero::gib(e.gradients), ", optimizer ", zero::gib(e.optimizer),
              "), host ", zero::gib(e.host_total()), "; allocated now: device ", measured_device, ", host ",
              zero::gib(host));
}

// ZeRO-Offload steps the host masters with DeepSpeedCPUAdam, which writes their 16-bit values into the
// layout's pinned copies in the same pass. Another optimizer is DeepSpeed's error unless the config allows it.
void use_offload_optimizer(const config::Config& c, const std::shared_ptr<optim::Optimizer>& optimizer,
                           zero::Strategy& layout) {
  // DS_REFERENCE_OFFLOAD_STEP=1: the reference the tests hold the pipelined update to — ‖g‖² in one pass at
  // step time, each host shard updated whole by optimizer.step() after backward.
  const bool reference = util::env_is("DS_REFERENCE_OFFLOAD_STEP");
  // Clipping and fp16's overflow check need ‖g‖²: the host chunks' share is summed as they land. Beside
  // super_offload's speculative updates it gets the threads those leave (cpuadam_cores_perc): both at full
  // count oversubscribe the cores while backward goes on.
  const bool speculates = c.zero.offload_optimizer.super_offload && c.gradient_clipping > 0.0 && !c.fp16.enabled;
  const auto threads = optim::speculation_threads(c.zero.offload_optimizer.cpuadam_cores_perc, at::get_num_threads());
  if (!reference && (c.gradient_clipping > 0.0 || c.fp16.enabled)) {
    const int norm_threads = speculates ? threads.norm : 0;
    // On a GPU each chunk's share is summed on the device before it crosses (bit-identical, and no host
    // bandwidth taken from the CPU Adam pass); DS_HOST_GRAD_NORM=1 keeps it on the host (for measurements).
    zero::DeviceSquaredSum on_device;
    if (optim::device_squared_sum_available() && !util::env_is("DS_HOST_GRAD_NORM")) {
      on_device = [](const at::Tensor& t) { return optim::device_squared_sum(t); };
    }
    layout.track_host_norms(
        [norm_threads](const std::vector<at::Tensor>& t) { return optim::squared_l2_norm(t, norm_threads); },
        std::move(on_device));
  }
  auto cpu_adam = std::dynamic_pointer_cast<optim::CpuAdam>(optimizer);
  if (!cpu_adam) {
    // DeepSpeedCPUAdagrad and DeepSpeedCPULion are DeepSpeed CPU optimizers too (one pass over each host
    // master after backward, without CPU Adam's overlap with it).
    const bool ds_cpu_optimizer = std::dynamic_pointer_cast<optim::Adagrad>(optimizer) != nullptr ||
                                  std::dynamic_pointer_cast<optim::Lion>(optimizer) != nullptr;
    if (c.zero_force_ds_cpu_optimizer && !ds_cpu_optimizer) {
      throw ConfigError(cat(c.source, ": zero_force_ds_cpu_optimizer: ZeRO-Offload with the optimizer ", optimizer->name(),
                            ", which is not a DeepSpeed CPU optimizer, will be slow; use optimizer.type Adam, AdamW, "
                            "Adagrad or Lion, or set <\"zero_force_ds_cpu_optimizer\": false> to run it anyway"));
    }
    if (c.zero.offload_optimizer.super_offload) {
      log::print_rank0(cat("super_offload changes nothing with ", optimizer->name(), ": its host update runs after "
                           "backward, as without the key (only DeepSpeedCPUAdam's overlaps backward)"));
    }
    return;  // the layout converts the masters itself after each step
  }
  const auto copies = layout.optimizer_param_copies();
  if (copies.size() != optimizer->num_groups()) return;  // a param group without parameters was dropped
  for (std::size_t g = 0; g < copies.size(); ++g) {
    for (std::size_t i = 0; i < copies[g].size(); ++i) {
      if (copies[g][i].defined()) cpu_adam->set_param_copy(g, i, copies[g][i]);
    }
  }
  layout.fused_cpu_optimizer(!copies.empty());
  // The layout then runs the host update bucket by bucket, each bucket's upload overlapping the next one's
  // update; when nothing makes the update wait for the global gradient norm (no clipping, no fp16 overflow
  // check), each bucket is updated as soon as its gradient is final on the host, while backward goes on, and
  // with clipping under super_offload, speculatively so. Either way every update is the one a whole-step
  // update would make, bit for bit.
  if (reference) return;
  zero::HostStepper stepper{
      [cpu_adam] { cpu_adam->begin_host_step(); },
      [cpu_adam] { return cpu_adam->host_gradient_scale(); },
      [cpu_adam](std::size_t g, std::size_t i, std::int64_t offset, std::int64_t numel, const at::Tensor& grad,
                 float scale, float* backup) { cpu_adam->step_host_range(g, i, offset, numel, grad, scale, backup); },
      [cpu_adam](std::size_t g, std::size_t i, std::int64_t offset, std::int64_t numel, const float* backup) {
        cpu_adam->restore_host_range(g, i, offset, numel, backup);
      }};
  auto mode = zero::HostStepMode::kAfterStep;
  if (c.gradient_clipping <= 0.0 && !c.fp16.enabled) {
    mode = zero::HostStepMode::kDuringBackward;
  } else if (c.zero.offload_optimizer.super_offload) {
    if (c.fp16.enabled) {
      log::print_rank0("super_offload with fp16: the host updates wait for the overflow check (speculation "
                       "covers gradient clipping only)");
    } else {
      mode = zero::HostStepMode::kSpeculative;
    }
  }
  if (!layout.use_host_stepper(std::move(stepper), mode)) return;
  cpu_adam->set_external_host_steps(true);
  if (mode == zero::HostStepMode::kSpeculative) {
    cpu_adam->set_speculative_threads(threads.adam);
    log::print_rank0(cat("super_offload: the host updates start during backward, before the gradient norm is known; "
                         "a step that clips undoes and redoes them (speculative updates on ",
                         threads.adam, " threads, the gradient norm on ", threads.norm, ")"));
  }
}

}  // namespace

Initialized initialize_module(const Arguments& args, torch::nn::AnyModule any_module,
                              std::shared_ptr<torch::nn::Module> module, std::vector<at::Tensor> model_parameters,
                              std::shared_ptr<data::Dataset> training_data, InitializeOptions options) {
  install_error_handler();
  // The config before the rendezvous: a bad one stops every rank with its one line. Read after it, rank 0 could
  // leave while another rank still waited on the TCPStore that rank 0 hosts, and LibTorch reports that lost
  // connection with a stack trace (seen in failure_modes, 2026-12-05).
  const auto current = comm::current_communicator();
  config::Config cfg = load_config(args, options, current ? current->world_size() : comm::job_layout().world_size);
  auto comm = comm::init_distributed();
  if (const int given = args.given_local_rank(); given >= 0 && given != comm->local_rank()) {
    throw UsageError(cat("Mismatch in local rank setting, --local_rank=", given, " but env['LOCAL_RANK']=",
                         comm->local_rank()));
  }
  DS_LOG_DIST(kInfo, "DeepSpeed info: version=", DS_VERSION, ", git-hash=", DS_GIT_HASH, ", git-branch=", DS_GIT_BRANCH);
  for (const auto& warning : cfg.warnings) DS_LOG_DIST(kWarning, warning);
  // From here on every collective is recorded (DeepSpeed configures its logger in initialize() too).
  if (cfg.comms_logger.enabled) {
    comm->set_logger(std::make_shared<comm::CommsLogger>(cfg.comms_logger, comm->world_size(), comm->rank()));
  }
  auto monitor = monitor::Monitor::from_config(cfg, comm->rank());
  for (const auto& sink : monitor.sinks()) DS_LOG_DIST(kInfo, "Monitor: writing to ", sink->location());
  const at::ScalarType model_dtype = zero::model_dtype(cfg);

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
  // Parameters zero::Init partitioned are empty here (their shards already hold rank 0's values); the ZeRO
  // layout gathers them back as it lays the model out.
  broadcast_module_state(*module, *comm);

  // Parameter groups: explicit ones, else one group of the given parameters; frozen ones are left alone.
  std::vector<optim::ParamGroup> user_groups = std::move(options.param_groups);
  if (user_groups.empty()) user_groups.push_back(optim::ParamGroup{std::move(model_parameters), {}});
  std::vector<std::vector<at::Tensor>> trainable;
  for (auto& g : user_groups) {
    std::erase_if(g.params, [](const at::Tensor& p) { return !p.requires_grad(); });
    trainable.push_back(g.params);
  }
  zero::check_optimizer_supported(cfg, static_cast<bool>(options.optimizer));
  zero::ModelShape shape;
  for (const auto& g : trainable) {
    for (const auto& p : g) shape.numels.push_back(zero::full_numel(p));
  }
  const bool offloaded = cfg.zero.offload_optimizer.device != "none";
  auto layout = zero::make_strategy(cfg, std::move(trainable), module, comm);
  const auto optimizer_params = layout->optimizer_params();
  std::vector<optim::ParamGroup> groups;
  for (std::size_t i = 0; i < user_groups.size(); ++i) {
    groups.push_back(optim::ParamGroup{optimizer_params[i], user_groups[i].hyper, user_groups[i].overrides});
  }

  std::shared_ptr<optim::Optimizer> optimizer;
  if (options.optimizer) {
    optimizer = options.optimizer(std::move(groups));
    DS_LOG_DIST(kInfo, "Using client callable to create basic optimizer");
  } else if (!cfg.optimizer.type.empty()) {
    optimizer = optim::make_optimizer(cfg.optimizer, std::move(groups), offloaded);
    DS_LOG_DIST(kInfo, "Using DeepSpeed Optimizer param name ", cfg.optimizer.type, " as basic optimizer");
  } else {
    throw ConfigError(cat(cfg.source, ": optimizer: missing; add an \"optimizer\" section or pass "
                                      "InitializeOptions::optimizer"));
  }
  layout->optimizer_upcasts_gradients(optimizer->upcasts_gradients());
  if (auto copies = layout->model_copies(); !copies.empty()) {
    layout->optimizer_writes_model_copies(optimizer->take_model_copies(std::move(copies)));
  }
  if (offloaded) use_offload_optimizer(cfg, optimizer, *layout);
  DS_LOG_DIST(kInfo, "DeepSpeed Basic Optimizer = ", optimizer->name());
  if (const auto message = zero::optimizer_creation_message(cfg); !message.empty()) DS_LOG_DIST(kInfo, message);
  DS_LOG_DIST(kInfo, "DeepSpeed Final Optimizer = ", optimizer->name());

  report_model_states(cfg, shape, *layout, *optimizer, *comm);

  std::shared_ptr<optim::LRScheduler> scheduler;
  if (!cfg.scheduler.type.empty()) {
    scheduler = optim::make_scheduler(cfg.scheduler, *optimizer);
    DS_LOG_DIST(kInfo, "DeepSpeed using configured LR scheduler = ", cfg.scheduler.type);
  }

  auto impl = std::make_shared<EngineImpl>(EngineParts{std::move(cfg), comm, std::move(any_module), module, model_dtype,
                                                      std::move(layout), optimizer, scheduler, training_data != nullptr,
                                                      std::move(monitor)});

  std::shared_ptr<data::DataLoader> loader;
  if (training_data) {
    data::DistributedSampler sampler(training_data->size(), comm->world_size(), comm->rank(), /*shuffle=*/true,
                                     options.data_seed);
    loader = std::make_shared<data::DataLoader>(training_data, impl->config().batch.micro_batch_per_gpu, sampler);
    // DeepSpeed's deepspeed_io pins batches too. Unpinned, the program's `x.to(device, non_blocking)` is a copy
    // from pageable memory, which CUDA starts only after the stream has drained: the host would wait for the
    // previous step to finish before it could queue the next forward.
    if (comm->device().is_cuda()) loader->set_pin_memory(true);
    std::weak_ptr<EngineImpl> weak = impl;
    loader->on_batch([weak] {
      if (auto e = weak.lock()) e->on_batch_fetched();
    });
  }

  if (comm->rank() == 0) {
    for (const auto& line : config::dump_lines(impl->config())) DS_LOG(kInfo, line);
  }
  impl->report_progress(0);
  return Initialized{Engine(impl), optimizer, loader, scheduler};
}

}  // namespace deepspeed
