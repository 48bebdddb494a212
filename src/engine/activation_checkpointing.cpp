// Activation checkpointing: a custom autograd function that keeps only its inputs and replays the forward
// in backward. See include/deepspeed/engine/activation_checkpointing.h for the settings and the contract.
#include "deepspeed/engine/activation_checkpointing.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <optional>
#include <string>

#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/Generator.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/autograd/engine.h>

#include "deepspeed/comm/communicator.h"
#include "deepspeed/engine/timers.h"
#include "deepspeed/util/error.h"
#include "deepspeed/util/logging.h"

namespace deepspeed::checkpointing {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using util::cat;

struct Settings {
  config::ActivationCheckpointingConfig config;
  std::shared_ptr<comm::Communicator> partition_group;  // null: partitioning is a no-op
  bool configured = false;
};

std::mutex& settings_mutex() {
  static std::mutex m;
  return m;
}
Settings& global_settings() {
  static Settings s;
  return s;
}
Settings snapshot() {
  std::lock_guard<std::mutex> lock(settings_mutex());
  return global_settings();
}

// Generator states of the CPU and of every CUDA device the inputs live on (what torch.utils.checkpoint
// preserves). Dropout, including SDPA's fused dropout, draws from these.
struct RngState {
  at::Tensor cpu;
  std::vector<std::pair<c10::Device, at::Tensor>> devices;
};

at::Tensor generator_state(c10::Device device) {
  at::Generator gen = at::globalContext().defaultGenerator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}
void set_generator_state(c10::Device device, const at::Tensor& state) {
  at::Generator gen = at::globalContext().defaultGenerator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

RngState capture_rng(const std::vector<c10::Device>& devices) {
  RngState s;
  s.cpu = generator_state(c10::Device(c10::kCPU));
  for (const auto& d : devices) s.devices.emplace_back(d, generator_state(d));
  return s;
}
void restore_rng(const RngState& s) {
  set_generator_state(c10::Device(c10::kCPU), s.cpu);
  for (const auto& [d, state] : s.devices) set_generator_state(d, state);
}

// Autocast as it was at the forward, so the recomputation runs in the same precision.
struct AutocastState {
  bool cpu_enabled = false, cuda_enabled = false, cache_enabled = true;
  at::ScalarType cpu_dtype = at::kBFloat16, cuda_dtype = at::kHalf;

  static AutocastState current() {
    AutocastState s;
    s.cpu_enabled = at::autocast::is_autocast_enabled(at::kCPU);
    s.cuda_enabled = at::autocast::is_autocast_enabled(at::kCUDA);
    s.cpu_dtype = at::autocast::get_autocast_dtype(at::kCPU);
    s.cuda_dtype = at::autocast::get_autocast_dtype(at::kCUDA);
    s.cache_enabled = at::autocast::is_autocast_cache_enabled();
    return s;
  }
  void apply() const {
    at::autocast::set_autocast_enabled(at::kCPU, cpu_enabled);
    at::autocast::set_autocast_enabled(at::kCUDA, cuda_enabled);
    at::autocast::set_autocast_dtype(at::kCPU, cpu_dtype);
    at::autocast::set_autocast_dtype(at::kCUDA, cuda_dtype);
    at::autocast::set_autocast_cache_enabled(cache_enabled);
  }
};

// DeepSpeed's is_activation_to_checkpoint: only floating-point tensors are moved or partitioned.
bool is_activation(const at::Tensor& t, int group_size) {
  return t.is_floating_point() && t.numel() >= group_size;
}

// A saved input outside autograd's saved-variable machinery (host copy or partition), with what is needed
// to rebuild it.
struct StashedInput {
  at::Tensor data;
  bool partitioned = false;
  c10::Device device = c10::Device(c10::kCPU);
  std::vector<std::int64_t> sizes;
  std::int64_t numel = 0;
};

struct State : torch::CustomClassHolder {
  TensorFunction fn;
  Settings settings;
  RngState rng;
  AutocastState autocast;
  std::vector<bool> requires_grad;      // per real input
  bool stashed_inputs = false;          // inputs kept in `stashed` rather than as autograd saved variables
  std::vector<StashedInput> stashed;
  c10::Device sync_device = c10::Device(c10::kCPU);
};

StashedInput stash(const at::Tensor& input, const Settings& s) {
  StashedInput out;
  out.device = input.device();
  out.sizes = input.sizes().vec();
  out.numel = input.numel();
  const auto& group = s.partition_group;
  const int n = group ? group->world_size() : 1;
  at::Tensor kept = input.detach();
  if (s.config.partition_activations && group && n > 1 && is_activation(input, n)) {
    const std::int64_t part = (out.numel + n - 1) / n;
    const std::int64_t begin = std::min(out.numel, part * group->rank());
    const std::int64_t len = std::min(part, out.numel - begin);
    at::Tensor shard = at::zeros({part}, input.options());
    shard.narrow(0, 0, len).copy_(kept.reshape(-1).narrow(0, begin, len));
    kept = shard;
    out.partitioned = true;
  }
  if (s.config.cpu_checkpointing && is_activation(input, 1) && !kept.is_cpu()) {
    // Pinned memory lets the copy run asynchronously on the device's stream; the copy back in backward is
    // ordered after it on the same stream.
    at::Tensor host = at::empty(kept.sizes(), kept.options().device(c10::kCPU).pinned_memory(true));
    host.copy_(kept, /*non_blocking=*/true);
    kept = host;
  }
  out.data = kept;
  return out;
}

at::Tensor unstash(const StashedInput& s, const Settings& settings) {
  at::Tensor t = s.data.to(s.device, /*non_blocking=*/true);
  if (!s.partitioned) return t;
  auto& group = *settings.partition_group;
  at::Tensor full = at::empty({t.numel() * group.world_size()}, t.options());
  group.all_gather(full, t).wait();
  return full.narrow(0, 0, s.numel).view(s.sizes);
}

class Timer {
 public:
  Timer(bool on, c10::Device device) : on_(on), device_(device) {
    if (on_) {
      engine::synchronize_device(device_);
      start_ = std::chrono::steady_clock::now();
    }
  }
  void log(const char* phase) {
    if (!on_) return;
    engine::synchronize_device(device_);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start_).count();
    char text[32];
    std::snprintf(text, sizeof text, "%.2f", ms);
    DS_LOG_DIST(kInfo, "activation checkpointing time (ms) | ", phase, ": ", text);
  }

 private:
  bool on_;
  c10::Device device_;
  std::chrono::steady_clock::time_point start_;
};

struct CheckpointFunction : torch::autograd::Function<CheckpointFunction> {
  // `inputs` ends with a placeholder that requires grad when no real input does, so that backward still runs
  // and reaches the parameters used inside fn.
  static variable_list forward(AutogradContext* ctx, at::TensorList inputs, c10::intrusive_ptr<State> state) {
    const std::vector<at::Tensor> real(inputs.begin(), inputs.end() - 1);
    const bool sync = state->settings.config.synchronize_checkpoint_boundary;
    if (sync) engine::synchronize_device(state->sync_device);
    Timer timer(state->settings.config.profile, state->sync_device);
    variable_list outputs = state->fn(real);
    timer.log("forward");

    const auto& s = state->settings;
    const bool partition = s.config.partition_activations && s.partition_group && s.partition_group->world_size() > 1;
    if (s.config.cpu_checkpointing || partition) {
      for (const auto& t : real) state->stashed.push_back(stash(t, state->settings));
      state->stashed_inputs = true;
    } else {
      // Autograd's saved variables detect an input modified in place before backward.
      ctx->save_for_backward(real);
    }
    variable_list non_differentiable;
    for (std::size_t i = 0; i < outputs.size(); ++i) {
      if (!outputs[i].defined()) throw UsageError(cat("checkpoint: output ", i, " of the function is undefined"));
      if (!outputs[i].is_floating_point() && !outputs[i].is_complex()) non_differentiable.push_back(outputs[i]);
    }
    ctx->mark_non_differentiable(non_differentiable);
    ctx->set_materialize_grads(false);
    ctx->saved_data["state"] = at::IValue::make_capsule(state);
    if (sync) engine::synchronize_device(state->sync_device);
    return outputs;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    if (!torch::autograd::Engine::get_default_engine().is_checkpoint_valid()) {
      throw UsageError("checkpoint: activation checkpointing is not compatible with torch::autograd::grad(); "
                       "use backward()");
    }
    auto state = c10::static_intrusive_pointer_cast<State>(ctx->saved_data["state"].toCapsule());
    const bool sync = state->settings.config.synchronize_checkpoint_boundary;
    if (sync) engine::synchronize_device(state->sync_device);
    Timer timer(state->settings.config.profile, state->sync_device);

    std::vector<at::Tensor> inputs;
    // The stash is kept (not cleared) so that a backward with retain_graph can run again; it is freed with
    // the graph.
    if (state->stashed_inputs) {
      for (const auto& s : state->stashed) inputs.push_back(unstash(s, state->settings));
    } else {
      inputs = ctx->get_saved_variables();
    }
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      inputs[i] = inputs[i].detach();
      inputs[i].requires_grad_(state->requires_grad[i]);
    }

    variable_list outputs;
    {
      const RngState now = capture_rng([&] {
        std::vector<c10::Device> devices;
        for (const auto& [d, unused] : state->rng.devices) devices.push_back(d);
        return devices;
      }());
      const AutocastState autocast_now = AutocastState::current();
      restore_rng(state->rng);
      state->autocast.apply();
      try {
        at::AutoGradMode grad(true);
        outputs = state->fn(inputs);
      } catch (...) {
        restore_rng(now);
        autocast_now.apply();
        throw;
      }
      restore_rng(now);
      autocast_now.apply();
    }

    variable_list roots, root_grads;
    for (std::size_t i = 0; i < outputs.size() && i < grads.size(); ++i) {
      if (grads[i].defined() && outputs[i].requires_grad()) {
        roots.push_back(outputs[i]);
        root_grads.push_back(grads[i]);
      }
    }
    if (!roots.empty()) torch::autograd::backward(roots, root_grads);
    timer.log("backward");
    if (sync) engine::synchronize_device(state->sync_device);

    variable_list result;
    for (auto& t : inputs) result.push_back(t.requires_grad() ? t.grad() : at::Tensor());
    result.emplace_back();  // the placeholder
    result.emplace_back();  // the state argument
    return result;
  }
};

}  // namespace

void configure(const config::ActivationCheckpointingConfig& settings,
               std::shared_ptr<comm::Communicator> partition_group) {
  if (settings.contiguous_memory_optimization && !settings.partition_activations) {
    throw UsageError("activation_checkpointing: contiguous_memory_optimization is only available with "
                     "partition_activations; set partition_activations to true");
  }
  if (settings.contiguous_memory_optimization && !settings.number_checkpoints) {
    throw UsageError("activation_checkpointing: contiguous_memory_optimization needs number_checkpoints "
                     "(the number of checkpointed layers)");
  }
  if (settings.partition_activations && (!partition_group || partition_group->world_size() == 1)) {
    DS_LOG_DIST(kWarning, "activation_checkpointing.partition_activations has no effect: it splits saved "
                          "inputs across a model-parallel group, and none was given (data parallelism only)");
  }
  if (settings.contiguous_memory_optimization) {
    DS_LOG_DIST(kWarning, "activation_checkpointing.contiguous_memory_optimization is accepted but not "
                          "implemented; checkpoints use the ordinary allocator");
  }
  {
    std::lock_guard<std::mutex> lock(settings_mutex());
    global_settings() = Settings{settings, std::move(partition_group), true};
  }
  DS_LOG_DIST(kInfo, "Activation Checkpointing Information");
  DS_LOG_DIST(kInfo, "----Partition Activations ", settings.partition_activations ? "True" : "False",
              ", CPU CHECKPOINTING ", settings.cpu_checkpointing ? "True" : "False");
  DS_LOG_DIST(kInfo, "----contiguous Memory Checkpointing ",
              settings.contiguous_memory_optimization ? "True" : "False", " with ",
              settings.number_checkpoints ? std::to_string(*settings.number_checkpoints) : "None", " total layers");
  DS_LOG_DIST(kInfo, "----Synchronization ", settings.synchronize_checkpoint_boundary ? "True" : "False");
  DS_LOG_DIST(kInfo, "----Profiling time in checkpointing ", settings.profile ? "True" : "False");
}

bool is_configured() {
  std::lock_guard<std::mutex> lock(settings_mutex());
  return global_settings().configured;
}

config::ActivationCheckpointingConfig settings() {
  std::lock_guard<std::mutex> lock(settings_mutex());
  return global_settings().config;
}

void reset() {
  std::lock_guard<std::mutex> lock(settings_mutex());
  global_settings() = Settings{};
}

std::vector<at::Tensor> checkpoint_tensors(TensorFunction fn, std::vector<at::Tensor> inputs) {
  if (!fn) throw UsageError("checkpoint: empty function");
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined()) throw UsageError(cat("checkpoint: input ", i, " is undefined"));
  }
  if (!at::GradMode::is_enabled()) return fn(inputs);

  auto state = c10::make_intrusive<State>();
  state->settings = snapshot();
  std::vector<c10::Device> cuda_devices;
  bool any_requires_grad = false;
  for (const auto& t : inputs) {
    state->requires_grad.push_back(t.requires_grad());
    any_requires_grad |= t.requires_grad();
    if (t.is_cuda() && std::find(cuda_devices.begin(), cuda_devices.end(), t.device()) == cuda_devices.end()) {
      cuda_devices.push_back(t.device());
    }
  }
  if (!cuda_devices.empty()) state->sync_device = cuda_devices.front();
  state->rng = capture_rng(cuda_devices);
  state->autocast = AutocastState::current();
  state->fn = std::move(fn);

  at::Tensor placeholder = at::empty({0}, at::TensorOptions().dtype(at::kFloat));
  if (!any_requires_grad) placeholder.requires_grad_(true);
  std::vector<at::Tensor> args = std::move(inputs);
  args.push_back(placeholder);
  return CheckpointFunction::apply(at::TensorList(args), state);
}

}  // namespace deepspeed::checkpointing
