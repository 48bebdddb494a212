#pragma once
/// \file
/// The training engine returned by deepspeed::initialize(). A cheap, copyable handle: copies share one engine.
///
///   auto out = engine(x);          // forward (timers, precision, ZeRO parameter handling)
///   engine.backward(loss);         // scales by 1/GAS, runs autograd, reduces gradients on the boundary
///   engine.step();                 // every micro-batch; updates only at the accumulation boundary
///
/// All ranks must call forward/backward/step the same number of times in the same order: they contain
/// collectives on the accumulation boundary. Calls are made from one thread.

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>

#include "deepspeed/config/config.h"

namespace deepspeed {

namespace comm {
class Communicator;
class CommsLogger;
}  // namespace comm
namespace monitor {
class Monitor;
}
namespace profiling {
class FlopsProfiler;
}
namespace optim {
class Optimizer;
class LRScheduler;
}  // namespace optim

class EngineImpl;
class GatheredParameters;
struct EngineInternals;  // tests' access to the engine's internals (tests/support/engine_internals.h)

/// User data stored with a checkpoint (DeepSpeed's client_state): ints, floats, strings, tensors, lists, dicts.
using ClientState = std::map<std::string, c10::IValue>;

/// What load_checkpoint() found: the checkpoint directory (nullopt if there was none) and the client state.
struct LoadedCheckpoint {
  std::optional<std::string> load_path;
  ClientState client_state;
};

class Engine {
 public:
  Engine() = default;
  explicit Engine(std::shared_ptr<EngineImpl> impl) : impl_(std::move(impl)) {}

  /// Runs the wrapped module's forward. R is the module's return type (at::Tensor by default).
  template <typename R = at::Tensor, typename... Args>
  R forward(Args&&... args) {
    ForwardScope scope(*this);
    return any_module().template forward<R>(prepare_input(std::forward<Args>(args))...);
  }
  template <typename R = at::Tensor, typename... Args>
  R operator()(Args&&... args) {
    return forward<R>(std::forward<Args>(args)...);
  }

  /// Scales `loss` by 1/gradient_accumulation_steps (scale_wrt_gas), applies the loss scale (fp16), runs
  /// autograd, and on the accumulation boundary averages gradients across data-parallel ranks. Returns the
  /// scaled loss, as DeepSpeed does.
  at::Tensor backward(const at::Tensor& loss, bool retain_graph = false, bool scale_wrt_gas = true);

  /// Call after every backward. On the accumulation boundary: clip, optimizer step, zero gradients, LR schedule
  /// (skipped on fp16 overflow), progress lines. Always advances the micro-step counter.
  void step();

  /// DeepSpeed's save_checkpoint (layout: include/deepspeed/checkpoint/files.h). Collective: every rank must
  /// call it with the same save_dir and tag (default "global_step<N>"); it returns when the checkpoint is
  /// complete on disk. A crash during the save leaves the previous checkpoint loadable.
  void save_checkpoint(const std::string& save_dir, std::optional<std::string> tag = std::nullopt,
                       const ClientState& client_state = {}, bool save_latest = true);

  /// DeepSpeed's load_checkpoint. Collective. Restores weights, optimizer and master state, loss scale,
  /// LR schedule and counters, so training continues exactly as if uninterrupted. ZeRO checkpoints load on any
  /// number of ranks (the shards are re-cut), and between stages 1 and 2; optimizer state does not move to or
  /// from stage 0 or 3 (load_module_only=true loads the weights alone). No `latest` and no tag → a warning and
  /// {nullopt, {}}, as in DeepSpeed.
  LoadedCheckpoint load_checkpoint(const std::string& load_dir, std::optional<std::string> tag = std::nullopt,
                                   bool load_module_strict = true, bool load_optimizer_states = true,
                                   bool load_lr_scheduler_states = true, bool load_module_only = false);

  /// DeepSpeed's save_16bit_model: rank 0 writes the module's parameters and buffers, in the model's dtype, as
  /// a state dict torch.load reads. Collective. Under ZeRO-3 it needs
  /// zero_optimization.stage3_gather_16bit_weights_on_model_save (otherwise a warning and false, as DeepSpeed).
  bool save_16bit_model(const std::string& save_dir, const std::string& save_filename = "pytorch_model.bin");

  bool is_gradient_accumulation_boundary() const;
  /// Overrides the boundary decision for the next step (DeepSpeed's set_gradient_accumulation_boundary).
  void set_gradient_accumulation_boundary(bool is_boundary);

  std::vector<double> get_lr() const;
  /// DeepSpeed's get_mom() as printed: "[(0.9, 0.999)]" for Adam, "[0.9]" for SGD.
  std::string get_mom() const;
  /// Global gradient norm of the last optimizer step (nullopt before the first).
  std::optional<double> get_global_grad_norm() const;
  /// False on non-boundary micro-steps and on fp16 overflow.
  bool was_step_applied() const;
  /// The fp16 loss scale the next backward multiplies the loss by (1 without fp16; DeepSpeed's
  /// optimizer.cur_scale).
  double loss_scale() const;

  void train(bool on = true);
  void eval() { train(false); }
  void zero_grad();

  std::int64_t global_steps() const;
  std::int64_t global_samples() const;
  std::int64_t micro_steps() const;
  std::int64_t skipped_steps() const;

  int local_rank() const;
  int global_rank() const;
  int world_size() const;
  int dp_world_size() const { return world_size(); }
  c10::Device device() const;

  std::int64_t train_batch_size() const;
  std::int64_t train_micro_batch_size_per_gpu() const;
  std::int64_t gradient_accumulation_steps() const;
  int zero_optimization_stage() const;
  bool fp16_enabled() const;
  bool bfloat16_enabled() const;

  const config::Config& config() const;
  std::shared_ptr<torch::nn::Module> module() const;
  optim::Optimizer& optimizer() const;
  std::shared_ptr<comm::Communicator> communicator() const;

  /// The run's length in optimizer steps: the step lines then show progress=step/total and an ETA (rank 0).
  /// Defaults to the LR schedule's total_num_steps where it has one. Any rank may call it; only rank 0 prints.
  void set_total_steps(std::int64_t total_steps);

  /// The monitors (tensorboard, csv_monitor) on rank 0; empty elsewhere. monitor().write({{name, value, step}})
  /// adds the caller's own scalars to the same files (DeepSpeed's engine.monitor.write_events).
  monitor::Monitor& monitor() const;
  /// The comms_logger (nullptr when the config does not enable it). Local: no rank needs to call anything.
  std::shared_ptr<comm::CommsLogger> comms_logger() const;
  /// DeepSpeed's deepspeed.comm.log_summary(): rank 0 prints the comms_logger table (every collective this
  /// rank launched so far). Not collective. Also printed when the engine is destroyed if it was not printed
  /// since the last recorded collective, so a run that forgets the call still gets it.
  void log_comms_summary();
  /// The flops profiler on rank 0 when flops_profiler.enabled (nullptr otherwise): after the profiled step its
  /// totals and per-module figures stay readable (total_flops(), module_profiles(), ...).
  profiling::FlopsProfiler* flops_profiler() const;

  explicit operator bool() const { return static_cast<bool>(impl_); }

 private:
  friend class GatheredParameters;
  friend struct EngineInternals;

  /// Brackets a forward: timers, throughput timer, ZeRO-3's root unit.
  class ForwardScope {
   public:
    explicit ForwardScope(Engine& engine);
    ~ForwardScope();
    ForwardScope(const ForwardScope&) = delete;
    ForwardScope& operator=(const ForwardScope&) = delete;

   private:
    EngineImpl& impl_;
  };

  torch::nn::AnyModule& any_module();
  /// Under fp16/bf16, float32 tensor arguments are cast to the model's dtype (DeepSpeed does this only with
  /// fp16.auto_cast; a dtype mismatch is otherwise the first error users hit).
  at::Tensor cast_input(const at::Tensor& x) const;
  template <typename T>
  decltype(auto) prepare_input(T&& x) const {
    if constexpr (std::is_same_v<std::decay_t<T>, at::Tensor>) return cast_input(x);
    else return std::forward<T>(x);
  }

  std::shared_ptr<EngineImpl> impl_;
};

}  // namespace deepspeed
