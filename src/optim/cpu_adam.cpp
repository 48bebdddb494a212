// DeepSpeedCPUAdam through the Optimizer interface; dispatch is in cpu_adam_kernel.cpp, arithmetic in the
// per-ISA files.
#include "deepspeed/optim/cpu_adam.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "src/optim/adam_internal.h"

namespace deepspeed::optim {

CpuAdam::CpuAdam(std::vector<ParamGroup> groups, CpuIsa isa) : Optimizer(std::move(groups)) {
  if (!cpu_isa_supported(isa)) throw std::invalid_argument(std::string("CpuAdam: CPU lacks ") + cpu_isa_name(isa));
  exec_.isa = isa;
  for (const auto& g : groups_) {
    if (g.hyper.amsgrad) throw std::invalid_argument("DeepSpeedCPUAdam does not support amsgrad");
    for (const auto& p : g.params) {
      if (p.scalar_type() != at::kFloat || !p.is_contiguous()) {
        throw std::invalid_argument("DeepSpeedCPUAdam: parameters must be contiguous fp32 tensors");
      }
    }
    copies_.emplace_back(g.params.size());
  }
  // Like DeepSpeed's ZeRO optimizers, the state exists from the start: a host that cannot hold it fails at
  // initialize(), not at the first step.
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    for (std::size_t i = 0; i < groups_[g].params.size(); ++i) init_adam_state(state(g, i), groups_[g].params[i], false);
  }
}

namespace {
// Counts are fp32 scalars, as DeepSpeed's.
void advance_count(ParamState& s) { s.at("step").add_(1); }
}  // namespace

void CpuAdam::step() {
  at::NoGradGuard no_grad;
  for (std::size_t gi = 0; gi < groups_.size(); ++gi) {
    // Masters a partial offload left on the device take the fused GPU step, the rest the CPU kernel.
    std::vector<at::Tensor> on_device;
    std::vector<ParamState*> device_states;
    for (std::size_t i = 0; i < groups_[gi].params.size(); ++i) {
      const at::Tensor& p = groups_[gi].params[i];
      if (!p.grad().defined()) continue;
      if (p.device().is_cpu()) {
        if (!layout_steps(gi, i)) {
          step_fused(gi, i, p.grad().contiguous(), copies_[gi][i], static_cast<float>(grad_scale_));
        } else if (!host_begun_) {
          advance_count(state(gi, i));
        }
      } else {
        on_device.push_back(p);
        device_states.push_back(&state(gi, i));
      }
    }
    fused_adam_step(on_device, device_states, groups_[gi].hyper, grad_scale_);
  }
  if (external_host_) {
    host_scale_ = static_cast<float>(grad_scale_);
    // Ranges begun during backward took theirs at begin_host_step() and may be running now.
    if (!host_begun_) snapshot_host_hyper();
  }
  host_begun_ = false;
  grad_scale_ = 1.0;
}

void CpuAdam::snapshot_host_hyper() {
  host_hyper_.clear();
  for (const auto& g : groups_) host_hyper_.push_back(g.hyper);
}

void CpuAdam::begin_host_step() {
  for (std::size_t gi = 0; gi < groups_.size(); ++gi) {
    for (std::size_t i = 0; i < groups_[gi].params.size(); ++i) {
      if (layout_steps(gi, i)) advance_count(state(gi, i));
    }
  }
  snapshot_host_hyper();
  host_begun_ = true;
}

void CpuAdam::step_host_range(std::size_t group, std::size_t index, std::int64_t offset, std::int64_t numel,
                              const at::Tensor& grad, float grad_scale, float* backup) {
  // Raw pointers, no views: the training thread may be attaching gradients to these tensors meanwhile.
  const at::Tensor& p = groups_.at(group).params.at(index);
  if (!layout_steps(group, index) || offset < 0 || numel < 0 || offset + numel > p.numel() || !grad.device().is_cpu() ||
      !grad.is_contiguous() || grad.numel() != numel) {
    throw std::invalid_argument("CpuAdam::step_host_range: needs a range of a CPU parameter with a 16-bit copy, "
                                "and its contiguous CPU gradient");
  }
  const ParamState& s = state(group, index);
  CpuAdamShard shard;
  shard.params = p.data_ptr<float>() + offset;
  shard.grads = grad.data_ptr();
  shard.grad_type = elem_type_of(grad, "grad", /*allow_fp32=*/true);
  shard.exp_avg = s.at("exp_avg").data_ptr<float>() + offset;
  shard.exp_avg_sq = s.at("exp_avg_sq").data_ptr<float>() + offset;
  if (const at::Tensor& copy = copies_.at(group).at(index); copy.defined()) {
    shard.param_copy = static_cast<char*>(copy.data_ptr()) + offset * 2;
    shard.copy_type = elem_type_of(copy, "param_copy", /*allow_fp32=*/false);
  }
  shard.numel = static_cast<std::size_t>(numel);
  shard.grad_scale = grad_scale;
  shard.backup = backup;
  CpuAdamExec exec = exec_;
  if (backup != nullptr && speculative_threads_ > 0) exec.threads = speculative_threads_;
  const Hyper& hyper = group < host_hyper_.size() ? host_hyper_[group] : groups_[group].hyper;
  cpu_adam_step(hyper, static_cast<std::int64_t>(s.at("step").item<float>()), shard, exec);
}

void CpuAdam::restore_host_range(std::size_t group, std::size_t index, std::int64_t offset, std::int64_t numel,
                                 const float* backup) {
  const at::Tensor& p = groups_.at(group).params.at(index);
  if (!layout_steps(group, index) || offset < 0 || numel < 0 || offset + numel > p.numel() || backup == nullptr) {
    throw std::invalid_argument("CpuAdam::restore_host_range: needs a range of a CPU parameter with a 16-bit copy, "
                                "and the backup its step_host_range() saved");
  }
  const ParamState& s = state(group, index);
  float* targets[3] = {p.data_ptr<float>() + offset, s.at("exp_avg").data_ptr<float>() + offset,
                       s.at("exp_avg_sq").data_ptr<float>() + offset};
  // Memory-bound like the update: spread over the same threads.
  const auto n = static_cast<std::size_t>(numel);
  constexpr std::size_t kSlice = std::size_t{1} << 16;
  const auto slices = static_cast<std::int64_t>((n + kSlice - 1) / kSlice);
#pragma omp parallel for schedule(static) if (exec_.parallel && slices > 1)
  for (std::int64_t i = 0; i < 3 * slices; ++i) {
    const std::size_t which = static_cast<std::size_t>(i / slices);
    const std::size_t off = static_cast<std::size_t>(i % slices) * kSlice;
    std::memcpy(targets[which] + off, backup + which * n + off, std::min(kSlice, n - off) * sizeof(float));
  }
}

SpeculationThreads speculation_threads(double cores_perc, int total) {
  total = std::max(total, 1);
  const int adam = std::clamp(static_cast<int>(std::lround(cores_perc * total)), 1, total);
  return SpeculationThreads{adam, std::max(total - adam, 1)};
}

void CpuAdam::step_fused(std::size_t group, std::size_t index, const at::Tensor& grad, const at::Tensor& param_copy,
                         float grad_scale) {
  at::Tensor& p = groups_.at(group).params.at(index);
  if (!p.device().is_cpu()) throw std::invalid_argument("CpuAdam::step_fused: the parameter is not on the CPU");
  ParamState& s = state(group, index);
  init_adam_state(s, p, /*amsgrad=*/false);
  // The count advances only once the kernel accepted the buffers, so a rejected call can be retried.
  const auto t = static_cast<std::int64_t>(s["step"].item<float>()) + 1;
  cpu_adam_step(groups_[group].hyper, t, p, grad, s["exp_avg"], s["exp_avg_sq"], param_copy, exec_, grad_scale);
  s["step"].fill_(static_cast<double>(t));
}

void CpuAdam::set_param_copy(std::size_t group, std::size_t index, at::Tensor copy) {
  const at::Tensor& p = groups_.at(group).params.at(index);
  if (copy.defined() &&
      (!copy.device().is_cpu() || !copy.is_contiguous() || copy.numel() != p.numel() ||
       (copy.scalar_type() != at::kBFloat16 && copy.scalar_type() != at::kHalf))) {
    throw std::invalid_argument("CpuAdam::set_param_copy: copy must be a contiguous CPU bf16/fp16 tensor of the "
                                "parameter's numel");
  }
  copies_.at(group).at(index) = std::move(copy);
}

}  // namespace deepspeed::optim
