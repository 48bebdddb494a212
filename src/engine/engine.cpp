#include "deepspeed/engine/engine.h"

#include <cmath>
#include <exception>

#include <ATen/ATen.h>
#include <c10/core/Event.h>
#include <c10/core/GradMode.h>
#include <c10/core/impl/VirtualGuardImpl.h>

#include "deepspeed/optim/clip.h"
#include "deepspeed/util/logging.h"
#include "src/engine/checkpoint_parts.h"
#include "src/engine/engine_impl.h"
#include "src/util/env.h"

namespace deepspeed {

using util::cat;

namespace {

// DeepSpeed's timer names (runtime/engine.py EngineTimers), printed with wall_clock_breakdown.
const std::vector<std::string> kMicroTimers = {"fwd_microstep", "bwd_microstep", "bwd_inner_microstep",
                                               "bwd_allreduce_microstep", "step_microstep"};
const std::vector<std::string> kGlobalTimers = {"fwd", "bwd", "bwd_inner", "bwd_allreduce", "step"};
// The ZeRO optimizers' own (stage_1_and_2.py OPTIMIZER_TIMERS): gradients ready for the update (attached, norm,
// clipping), the update, the new weights back in the model. Where an offloaded run's step time goes.
const std::vector<std::string> kOptimizerTimers = {"optimizer_allgather", "optimizer_gradients", "optimizer_step"};

}  // namespace

EngineImpl::EngineImpl(EngineParts parts)
    : parts_(std::move(parts)),
      loss_scaler_(parts_.config.fp16.enabled ? precision::LossScaler(parts_.config.fp16) : precision::LossScaler()),
      // DeepSpeed times the phases for the flops profiler's latencies too (printed only on the global line).
      timers_(parts_.comm->device(), parts_.config.wall_clock_breakdown || parts_.config.flops_profiler.enabled),
      throughput_(parts_.comm->device(), parts_.config.throughput_timer.enabled,
                  parts_.config.throughput_timer.synchronized, parts_.config.batch.train_batch_size,
                  parts_.config.steps_per_print),
      monitor_(std::move(parts_.monitor), parts_.config.wall_clock_breakdown),
      progress_(parts_.config.batch.train_batch_size),
      flops_profile_(parts_.config, parts_.module, parts_.comm->rank(), parts_.comm->device()) {
  if (parts_.config.scheduler.total_num_steps > 0) progress_.set_total_steps(parts_.config.scheduler.total_num_steps);
  // The checkpoint parts in save/load order (see checkpoint_parts()); the ZeRO layout is its own part.
  auto own = [this](std::unique_ptr<checkpoint::Stateful> part) {
    checkpoint_parts_.push_back(part.get());
    owned_parts_.push_back(std::move(part));
  };
  own(module_weights_part(parts_.module, *parts_.zero, *parts_.comm));
  checkpoint_parts_.push_back(parts_.zero.get());
  own(optimizer_part(*parts_.optimizer, *parts_.zero));
  own(json_part({"loss_scaler", [this] { return std::optional(loss_scaler_.state_dict()); },
                 [this](const nlohmann::json& s) { loss_scaler_.load_state_dict(s); },
                 [](const checkpoint::LoadOptions& o) { return o.restores_optimizer(); }}));
  own(json_part({"lr_scheduler",
                 [this]() -> std::optional<nlohmann::json> {
                   if (!parts_.scheduler) return std::nullopt;
                   return parts_.scheduler->state_dict();
                 },
                 [this](const nlohmann::json& s) { parts_.scheduler->load_state_dict(s); },
                 [this](const checkpoint::LoadOptions& o) {
                   return parts_.scheduler && o.lr_scheduler_states && !o.module_only;
                 }}));
  own(counters_part(counters_, parts_.config.batch.gradient_accumulation_steps, parts_.comm->world_size()));
}

EngineImpl::~EngineImpl() {
  // Not while unwinding: the summary waits for in-flight NCCL collectives, which a failed job may never finish.
  if (std::uncaught_exceptions() > 0) return;
  try {
    log_comms_summary();
  } catch (const std::exception& e) {
    DS_LOG(kWarning, "comms_logger: no summary: ", e.what());
  }
}

void EngineImpl::log_comms_summary() {
  const auto& logger = parts_.comm->logger();
  if (!logger || parts_.comm->rank() != 0) return;
  logger->harvest(/*wait=*/true);
  const std::int64_t total = logger->total_operations();
  if (total == summarized_operations_) return;
  summarized_operations_ = total;
  log::print_plain_rank0(logger->summary_table());
}

bool EngineImpl::is_boundary() const {
  if (boundary_override_) return *boundary_override_;
  return (counters_.micro_steps + 1) % config().batch.gradient_accumulation_steps == 0;
}

void EngineImpl::begin_forward() {
  if (!parts_.has_dataloader) throughput_.start();
  parts_.zero->begin_forward();
  timers_.start("fwd_microstep");
  timers_.start("fwd");
  flops_profile_.begin_forward(counters_.global_steps);
}

void EngineImpl::end_forward() {
  flops_profile_.end_forward();
  timers_.stop("fwd");
  timers_.stop("fwd_microstep");
}

at::Tensor EngineImpl::cast_input(const at::Tensor& x) const {
  if (parts_.model_dtype == at::kFloat || !x.defined() || x.scalar_type() != at::kFloat) return x;
  return x.to(parts_.model_dtype);
}

at::Tensor EngineImpl::backward(const at::Tensor& loss, bool retain_graph, bool scale_wrt_gas) {
  timers_.start("bwd_microstep");
  timers_.start("bwd");
  const auto gas = config().batch.gradient_accumulation_steps;
  at::Tensor scaled = scale_wrt_gas && gas > 1 ? loss / static_cast<double>(gas) : loss;
  // fp16: the loss is scaled in fp32 so small gradients survive the 16-bit backward.
  at::Tensor to_differentiate = config().fp16.enabled ? scaled.to(at::kFloat) * loss_scaler_.scale() : scaled;

  timers_.start("bwd_inner_microstep");
  timers_.start("bwd_inner");
  parts_.zero->begin_backward(is_boundary());
  to_differentiate.backward({}, retain_graph);
  monitor_.on_backward(loss);
  timers_.stop("bwd_inner");
  timers_.stop("bwd_inner_microstep");

  timers_.start("bwd_allreduce_microstep");
  timers_.start("bwd_allreduce");
  parts_.zero->end_backward();
  timers_.stop("bwd_allreduce");
  timers_.stop("bwd_allreduce_microstep");

  timers_.stop("bwd");
  timers_.stop("bwd_microstep");
  return scaled.detach();
}

bool EngineImpl::prepare_gradients(const std::vector<at::Tensor>& grads) {
  const auto& c = config();
  const bool need_norm = c.gradient_clipping > 0.0 || c.fp16.enabled;
  device_squared_norm_ = at::Tensor();
  if (!need_norm) return true;
  if (clip_on_device(grads)) return true;
  const double squared = parts_.zero->sum_over_shards(parts_.zero->squared_gradient_norm(grads, [](const auto& t) { return optim::squared_l2_norm(t); }));
  const double scale = loss_scaler_.scale();
  const double norm = std::sqrt(squared) / scale;
  auto& comm = *parts_.comm;
  if (c.fp16.enabled) {
    // Every rank must agree to skip: a non-finite norm anywhere is an overflow everywhere.
    comm::CallerScope caller("overflow_check");
    const bool overflow = comm.all_reduce_scalar(std::isfinite(norm) ? 0.0 : 1.0, comm::ReduceOp::kMax) > 0;
    if (overflow) {
      const double attempted = scale;
      const std::string message = loss_scaler_.update(true, comm.rank());
      if (comm.rank() == 0) {
        DS_LOG(kInfo, message);
        // DeepSpeed's fp16 optimizer (no ZeRO) adds its own line; its ZeRO optimizers do not.
        if (!parts_.zero->sharded()) {
          DS_LOG_DIST(kInfo, "Overflow detected. Skipping step. Attempted loss scale: ",
                      static_cast<std::int64_t>(attempted), ", reducing to ",
                      static_cast<std::int64_t>(loss_scaler_.scale()));
        }
      }
      return false;
    }
  }
  global_grad_norm_ = norm;
  double coefficient = 1.0 / scale;
  if (c.gradient_clipping > 0.0) coefficient *= std::min(1.0, c.gradient_clipping / (norm + 1e-6));
  apply_gradient_coefficient(grads, coefficient);
  return true;
}

void EngineImpl::apply_gradient_coefficient(const std::vector<at::Tensor>& grads, double coefficient) {
  if (coefficient == 1.0 || parts_.optimizer->take_gradient_scale(coefficient)) return;
  at::NoGradGuard no_grad;
  for (at::Tensor g : grads) g.mul_(coefficient);
}

bool EngineImpl::clip_on_device(const std::vector<at::Tensor>& grads) {
  const auto& c = config();
  if (c.fp16.enabled) return false;  // skipping a step for an overflow is the host's decision
  // DS_HOST_GRAD_NORM=1 (read at each step): the norm read to the host before the update, as DeepSpeed does,
  // so a measurement can tell what the wait costs (and a run can step around the device path).
  if (util::env_is("DS_HOST_GRAD_NORM")) return false;
  at::NoGradGuard no_grad;
  auto squared = parts_.zero->device_squared_gradient_norm(
      grads, [](const std::vector<at::Tensor>& t) { return optim::squared_l2_norm_tensor(t); });
  if (!squared) return false;
  // The loss scaler's scale is 1 without fp16; kept in the arithmetic so the two paths cannot drift apart.
  const double scale = loss_scaler_.scale();
  const at::Tensor factor = optim::gradient_factor(*squared, c.gradient_clipping, scale);
  device_squared_norm_ = std::move(*squared);
  device_norm_scale_ = scale;
  if (device_squared_norm_.is_cuda()) {
    // get_global_grad_norm() may be called on another stream (or thread) than this one, which wrote the norm.
    const c10::impl::VirtualGuardImpl guard(device_squared_norm_.device().type());
    device_norm_ready_.emplace(device_squared_norm_.device().type());
    device_norm_ready_->record(guard.getStream(device_squared_norm_.device()));
  }
  global_grad_norm_.reset();
  // Kept until the next step's: a step behind the forward reads it on another stream after this returns.
  device_factor_ = factor;
  if (parts_.optimizer->take_device_gradient_scale(factor)) return true;
  // Optimizers that take a number get it as the host path computes it (the same bits); reading it waits.
  apply_gradient_coefficient(grads, factor.item<double>());
  return true;
}

std::optional<double> EngineImpl::global_grad_norm() const {
  if (device_squared_norm_.defined()) {
    if (device_norm_ready_) device_norm_ready_->synchronize();
    global_grad_norm_ = std::sqrt(device_squared_norm_.item<double>()) / device_norm_scale_;
    device_squared_norm_ = at::Tensor();
    device_norm_ready_.reset();
  }
  return global_grad_norm_;
}

void EngineImpl::take_model_step() {
  auto& zero = *parts_.zero;
  timers_.start("optimizer_gradients");
  step_applied_ = prepare_gradients(zero.optimizer_gradients());
  timers_.stop("optimizer_gradients");
  if (step_applied_) {
    timers_.start("optimizer_step");
    // The layout may run the step in parts behind the next forward (DS_STEP_BEHIND_FORWARD=1, stage 0).
    auto& optimizer = *parts_.optimizer;
    const auto part = [&optimizer](const std::vector<std::vector<bool>>& p, bool last) {
      return optimizer.step_part(p, last);
    };
    if (!zero.step_behind_forward(part)) optimizer.step();
    timers_.stop("optimizer_step");
    timers_.start("optimizer_allgather");
    zero.after_optimizer_step();
    timers_.stop("optimizer_allgather");
    if (config().fp16.enabled) loss_scaler_.update(false, parts_.comm->rank());
    if (parts_.scheduler) parts_.scheduler->step();
  } else {
    ++counters_.skipped_steps;
  }
  zero.end_step();
  if (config().wall_clock_breakdown && zero.sharded()) log::print_rank0(timers_.log_line(kOptimizerTimers));
  const auto& every = config().steps_per_print;
  if (every && (counters_.global_steps + 1) % *every == 0) report_progress(counters_.global_steps + 1);
  ++counters_.global_steps;
  counters_.global_samples += config().batch.train_batch_size;
  if (monitor_.enabled()) {
    const double lr = parts_.optimizer->num_groups() > 0 ? parts_.optimizer->lr(0) : 0.0;
    monitor_.on_model_step(counters_.global_samples, lr,
                           config().fp16.enabled ? std::optional(loss_scaler_.scale()) : std::nullopt);
  }
}

void EngineImpl::report_progress(std::int64_t step) {
  if (parts_.comm->rank() != 0) return;
  std::vector<double> lrs;
  for (std::size_t g = 0; g < parts_.optimizer->num_groups(); ++g) lrs.push_back(parts_.optimizer->lr(g));
  std::string extra = progress_.fields(step);
  if (config().memory_breakdown) extra += engine::memory_fields(parts_.comm->device());
  DS_LOG_DIST(kInfo, "step=", step, ", skipped=", counters_.skipped_steps, ", lr=", util::py_float_list(lrs),
              ", mom=", parts_.optimizer->momentum_repr(), extra);
}

void EngineImpl::step() {
  timers_.start("step_microstep");
  timers_.start("step");
  step_applied_ = false;
  const bool boundary = is_boundary();
  if (boundary) take_model_step();
  const std::string speed = throughput_.stop(boundary, boundary && parts_.comm->rank() == 0);
  if (!speed.empty()) DS_LOG(kInfo, speed);
  timers_.stop("step");
  timers_.stop("step_microstep");
  if (timers_.enabled()) {
    if (config().wall_clock_breakdown) log::print_rank0(timers_.log_line(kMicroTimers));
    if (boundary) {
      flops_profile_.after_boundary(counters_.global_steps, timers_, parts_.comm->world_size(),
                                    config().batch.micro_batch_per_gpu);
      monitor_.on_boundary_timers(timers_, counters_.global_samples);
      log::print_rank0(timers_.log_line(kGlobalTimers));
    }
  }
  ++counters_.micro_steps;
  boundary_override_.reset();
}

// ---- Engine handle -------------------------------------------------------------------------------------

Engine::ForwardScope::ForwardScope(Engine& engine) : impl_(*engine.impl_) { impl_.begin_forward(); }
Engine::ForwardScope::~ForwardScope() { impl_.end_forward(); }

torch::nn::AnyModule& Engine::any_module() { return impl_->any_module(); }

at::Tensor Engine::backward(const at::Tensor& loss, bool retain_graph, bool scale_wrt_gas) {
  return impl_->backward(loss, retain_graph, scale_wrt_gas);
}
void Engine::step() { impl_->step(); }
bool Engine::is_gradient_accumulation_boundary() const { return impl_->is_boundary(); }
void Engine::set_gradient_accumulation_boundary(bool is_boundary) { impl_->set_boundary_override(is_boundary); }

std::vector<double> Engine::get_lr() const {
  std::vector<double> lrs;
  for (std::size_t g = 0; g < impl_->optimizer().num_groups(); ++g) lrs.push_back(impl_->optimizer().lr(g));
  return lrs;
}
std::string Engine::get_mom() const { return impl_->optimizer().momentum_repr(); }
std::optional<double> Engine::get_global_grad_norm() const { return impl_->global_grad_norm(); }
bool Engine::was_step_applied() const { return impl_->step_applied(); }
double Engine::loss_scale() const { return impl_->loss_scaler().scale(); }

void Engine::train(bool on) { impl_->module()->train(on); }
void Engine::zero_grad() { impl_->zero().zero_grad(); }
at::Tensor Engine::cast_input(const at::Tensor& x) const { return impl_->cast_input(x); }

std::int64_t Engine::global_steps() const { return impl_->counters().global_steps; }
std::int64_t Engine::global_samples() const { return impl_->counters().global_samples; }
std::int64_t Engine::micro_steps() const { return impl_->counters().micro_steps; }
std::int64_t Engine::skipped_steps() const { return impl_->counters().skipped_steps; }
int Engine::local_rank() const { return impl_->comm().local_rank(); }
int Engine::global_rank() const { return impl_->comm().rank(); }
int Engine::world_size() const { return impl_->comm().world_size(); }
c10::Device Engine::device() const { return impl_->comm().device(); }
std::int64_t Engine::train_batch_size() const { return impl_->config().batch.train_batch_size; }
std::int64_t Engine::train_micro_batch_size_per_gpu() const { return impl_->config().batch.micro_batch_per_gpu; }
std::int64_t Engine::gradient_accumulation_steps() const { return impl_->config().batch.gradient_accumulation_steps; }
int Engine::zero_optimization_stage() const { return impl_->zero().stage(); }
bool Engine::fp16_enabled() const { return impl_->config().fp16.enabled; }
bool Engine::bfloat16_enabled() const { return impl_->config().bf16.enabled; }
const config::Config& Engine::config() const { return impl_->config(); }
std::shared_ptr<torch::nn::Module> Engine::module() const { return impl_->module(); }
optim::Optimizer& Engine::optimizer() const { return impl_->optimizer(); }
std::shared_ptr<comm::Communicator> Engine::communicator() const { return impl_->comm_ptr(); }
void Engine::set_total_steps(std::int64_t total_steps) { impl_->set_total_steps(total_steps); }
monitor::Monitor& Engine::monitor() const { return impl_->training_monitor().sinks(); }
std::shared_ptr<comm::CommsLogger> Engine::comms_logger() const { return impl_->comm().logger(); }
void Engine::log_comms_summary() { impl_->log_comms_summary(); }
profiling::FlopsProfiler* Engine::flops_profiler() const { return impl_->flops_profiler(); }

}  // namespace deepspeed
