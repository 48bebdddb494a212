#include "deepspeed/engine/engine.h"

#include <cmath>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "deepspeed/optim/clip.h"
#include "deepspeed/util/logging.h"
#include "src/engine/engine_impl.h"

namespace deepspeed {

using util::cat;

namespace {

// DeepSpeed's timer names (runtime/engine.py EngineTimers), printed with wall_clock_breakdown.
const std::vector<std::string> kMicroTimers = {"fwd_microstep", "bwd_microstep", "bwd_inner_microstep",
                                               "bwd_allreduce_microstep", "step_microstep"};
const std::vector<std::string> kGlobalTimers = {"fwd", "bwd", "bwd_inner", "bwd_allreduce", "step"};

}  // namespace

EngineImpl::EngineImpl(Parts parts)
    : config(std::move(parts.config)), comm(std::move(parts.comm)), any_module(std::move(parts.any_module)),
      module(std::move(parts.module)), model_dtype(parts.model_dtype), flat_groups(std::move(parts.flat_groups)),
      partitioned(std::move(parts.partitioned)), reducer(std::move(parts.reducer)), master(std::move(parts.master)), optimizer(std::move(parts.optimizer)),
      scheduler(std::move(parts.scheduler)),
      loss_scaler(config.fp16.enabled ? precision::LossScaler(config.fp16) : precision::LossScaler()),
      bucket_numel(parts.bucket_numel),
      has_dataloader_(parts.has_dataloader), timers_(comm->device(), config.wall_clock_breakdown),
      throughput_(comm->device(), config.throughput_timer.enabled, config.throughput_timer.synchronized,
                  config.batch.train_batch_size, config.steps_per_print) {}

bool EngineImpl::is_boundary() const {
  if (boundary_override) return *boundary_override;
  return (micro_steps + 1) % config.batch.gradient_accumulation_steps == 0;
}

void EngineImpl::begin_forward() {
  if (!has_dataloader_) throughput_.start();
  if (partitioned) partitioned->begin_forward();
  timers_.start("fwd_microstep");
  timers_.start("fwd");
}

void EngineImpl::end_forward() {
  timers_.stop("fwd");
  timers_.stop("fwd_microstep");
}

at::Tensor EngineImpl::cast_input(const at::Tensor& x) const {
  if (model_dtype == at::kFloat || !x.defined() || x.scalar_type() != at::kFloat) return x;
  return x.to(model_dtype);
}

at::Tensor EngineImpl::backward(const at::Tensor& loss, bool retain_graph, bool scale_wrt_gas) {
  timers_.start("bwd_microstep");
  timers_.start("bwd");
  const auto gas = config.batch.gradient_accumulation_steps;
  at::Tensor scaled = scale_wrt_gas && gas > 1 ? loss / static_cast<double>(gas) : loss;
  // fp16: the loss is scaled in fp32 so small gradients survive the 16-bit backward.
  at::Tensor to_differentiate = config.fp16.enabled ? scaled.to(at::kFloat) * loss_scaler.scale() : scaled;

  timers_.start("bwd_inner_microstep");
  timers_.start("bwd_inner");
  reducer->prepare_backward(is_boundary());
  if (partitioned) partitioned->begin_backward();
  to_differentiate.backward({}, retain_graph);
  timers_.stop("bwd_inner");
  timers_.stop("bwd_inner_microstep");

  timers_.start("bwd_allreduce_microstep");
  timers_.start("bwd_allreduce");
  reducer->finish_backward();
  if (partitioned) partitioned->end_backward();
  timers_.stop("bwd_allreduce");
  timers_.stop("bwd_allreduce_microstep");

  timers_.stop("bwd");
  timers_.stop("bwd_microstep");
  return scaled.detach();
}

bool EngineImpl::prepare_gradients(const std::vector<at::Tensor>& grads) {
  const bool need_norm = config.gradient_clipping > 0.0 || config.fp16.enabled;
  if (!need_norm) return true;
  double squared = optim::squared_l2_norm(grads);
  if (reducer->sharded()) squared = comm->all_reduce_scalar(squared, comm::ReduceOp::kSum);
  const double scale = loss_scaler.scale();
  const double norm = std::sqrt(squared) / scale;
  if (config.fp16.enabled) {
    // Every rank must agree to skip: a non-finite norm anywhere is an overflow everywhere.
    const bool overflow = comm->all_reduce_scalar(std::isfinite(norm) ? 0.0 : 1.0, comm::ReduceOp::kMax) > 0;
    if (overflow) {
      const double attempted = scale;
      const std::string message = loss_scaler.update(true, comm->rank());
      if (comm->rank() == 0) {
        DS_LOG(kInfo, message);
        if (!reducer->sharded()) {
          DS_LOG_DIST(kInfo, "Overflow detected. Skipping step. Attempted loss scale: ",
                      static_cast<std::int64_t>(attempted), ", reducing to ",
                      static_cast<std::int64_t>(loss_scaler.scale()));
        }
      }
      return false;
    }
  }
  global_grad_norm = norm;
  double coefficient = 1.0 / scale;
  if (config.gradient_clipping > 0.0) coefficient *= std::min(1.0, config.gradient_clipping / (norm + 1e-6));
  if (coefficient != 1.0) {
    at::NoGradGuard no_grad;
    for (at::Tensor g : grads) g.mul_(coefficient);
  }
  return true;
}

void EngineImpl::take_model_step() {
  const auto grads = master ? master->attach_gradients(reducer->gradients()) : reducer->gradients();
  step_applied = prepare_gradients(grads);
  if (step_applied) {
    optimizer->step();
    if (master) master->write_back();
    if (config.fp16.enabled) loss_scaler.update(false, comm->rank());
    if (scheduler) scheduler->step();
  } else {
    ++skipped_steps;
  }
  if (master) master->release_gradients();
  reducer->zero_grad();
  if (config.steps_per_print && (global_steps + 1) % *config.steps_per_print == 0) report_progress(global_steps + 1);
  ++global_steps;
  global_samples += config.batch.train_batch_size;
}

std::vector<zero::FlatGroup*> EngineImpl::layout_groups() const {
  if (partitioned) return partitioned->groups();
  std::vector<zero::FlatGroup*> groups;
  for (const auto& g : flat_groups) groups.push_back(g.get());
  return groups;
}

void EngineImpl::report_progress(std::int64_t step) const {
  std::vector<double> lrs;
  for (std::size_t g = 0; g < optimizer->num_groups(); ++g) lrs.push_back(optimizer->lr(g));
  DS_LOG_DIST(kInfo, "step=", step, ", skipped=", skipped_steps, ", lr=", util::py_float_list(lrs),
              ", mom=", optimizer->momentum_repr());
}

void EngineImpl::step() {
  timers_.start("step_microstep");
  timers_.start("step");
  step_applied = false;
  const bool boundary = is_boundary();
  if (boundary) take_model_step();
  const std::string speed = throughput_.stop(boundary, boundary && comm->rank() == 0);
  if (!speed.empty()) DS_LOG(kInfo, speed);
  timers_.stop("step");
  timers_.stop("step_microstep");
  if (timers_.enabled()) {
    log::print_rank0(timers_.log_line(kMicroTimers));
    if (boundary) log::print_rank0(timers_.log_line(kGlobalTimers));
  }
  ++micro_steps;
  boundary_override.reset();
}

// ---- Engine handle -------------------------------------------------------------------------------------

Engine::ForwardScope::ForwardScope(Engine& engine) : impl_(*engine.impl_) { impl_.begin_forward(); }
Engine::ForwardScope::~ForwardScope() { impl_.end_forward(); }

torch::nn::AnyModule& Engine::any_module() { return impl_->any_module; }

at::Tensor Engine::backward(const at::Tensor& loss, bool retain_graph, bool scale_wrt_gas) {
  return impl_->backward(loss, retain_graph, scale_wrt_gas);
}
void Engine::step() { impl_->step(); }
bool Engine::is_gradient_accumulation_boundary() const { return impl_->is_boundary(); }
void Engine::set_gradient_accumulation_boundary(bool is_boundary) { impl_->boundary_override = is_boundary; }

std::vector<double> Engine::get_lr() const {
  std::vector<double> lrs;
  for (std::size_t g = 0; g < impl_->optimizer->num_groups(); ++g) lrs.push_back(impl_->optimizer->lr(g));
  return lrs;
}
std::string Engine::get_mom() const { return impl_->optimizer->momentum_repr(); }
std::optional<double> Engine::get_global_grad_norm() const { return impl_->global_grad_norm; }
bool Engine::was_step_applied() const { return impl_->step_applied; }

void Engine::train(bool on) { impl_->module->train(on); }
void Engine::zero_grad() { impl_->reducer->zero_grad(); }
at::Tensor Engine::cast_input(const at::Tensor& x) const { return impl_->cast_input(x); }

std::int64_t Engine::global_steps() const { return impl_->global_steps; }
std::int64_t Engine::global_samples() const { return impl_->global_samples; }
std::int64_t Engine::micro_steps() const { return impl_->micro_steps; }
std::int64_t Engine::skipped_steps() const { return impl_->skipped_steps; }
int Engine::local_rank() const { return impl_->comm->local_rank(); }
int Engine::global_rank() const { return impl_->comm->rank(); }
int Engine::world_size() const { return impl_->comm->world_size(); }
c10::Device Engine::device() const { return impl_->comm->device(); }
std::int64_t Engine::train_batch_size() const { return impl_->config.batch.train_batch_size; }
std::int64_t Engine::train_micro_batch_size_per_gpu() const { return impl_->config.batch.micro_batch_per_gpu; }
std::int64_t Engine::gradient_accumulation_steps() const { return impl_->config.batch.gradient_accumulation_steps; }
int Engine::zero_optimization_stage() const { return impl_->config.zero.stage; }
bool Engine::fp16_enabled() const { return impl_->config.fp16.enabled; }
bool Engine::bfloat16_enabled() const { return impl_->config.bf16.enabled; }
const config::Config& Engine::config() const { return impl_->config; }
std::shared_ptr<torch::nn::Module> Engine::module() const { return impl_->module; }
optim::Optimizer& Engine::optimizer() const { return *impl_->optimizer; }
std::shared_ptr<comm::Communicator> Engine::communicator() const { return impl_->comm; }

}  // namespace deepspeed
