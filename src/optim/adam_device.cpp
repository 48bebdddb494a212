// The device Adam step over fp32 masters (adam_master_kernel.cu) from ATen tensors: checks what the kernel
// takes, builds its tensor table, launches one kernel per (gradient dtype, copy dtype).
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "deepspeed/util/error.h"
#include "src/optim/adam_internal.h"
#include "src/util/env.h"

#ifdef DS_WITH_CUDA_ADAM
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "src/optim/adam_master_kernel.h"
#include "src/optim/device_table.h"
#include "src/util/chunk_table.h"
#include "src/util/value_type_of.h"
#endif

namespace deepspeed::optim {

bool reference_adam_requested() {
  return util::env_is("DS_REFERENCE_ADAM");
}

#ifdef DS_WITH_CUDA_ADAM
namespace {

using detail::AdamValueType;

bool value_type(at::ScalarType t, AdamValueType& out) {
  const auto type = util::value_type_of(t);
  if (type) out = *type;
  return type.has_value();
}

bool aligned(const void* p, std::size_t bytes) { return reinterpret_cast<std::uintptr_t>(p) % bytes == 0; }

bool same_device_contiguous(const at::Tensor& t, const at::Tensor& p) {
  return t.defined() && t.device() == p.device() && t.is_contiguous() && t.numel() == p.numel();
}

}  // namespace

bool device_adam_step(const std::vector<at::Tensor>& params, const std::vector<at::Tensor>& grads,
                      const std::vector<ParamState*>& states, const std::vector<at::Tensor>& copies, const Hyper& h,
                      double grad_scale, const float* device_scale) {
  if (params.empty() || !h.bias_correction || h.amsgrad || reference_adam_requested()) return false;
  const c10::Device device = params.front().device();
  if (!device.is_cuda()) return false;
  // (gradient type, copy type) → the tensors of one launch.
  std::map<std::pair<int, int>, std::vector<detail::AdamTensorArgs>> launches;
  for (std::size_t i = 0; i < params.size(); ++i) {
    const at::Tensor& p = params[i];
    const at::Tensor& g = grads[i];
    const ParamState& s = *states[i];
    const at::Tensor& m = s.at("exp_avg");
    const at::Tensor& v = s.at("exp_avg_sq");
    const at::Tensor& step = s.at("step");
    const at::Tensor copy = i < copies.size() ? copies[i] : at::Tensor();
    AdamValueType grad_type, copy_type = AdamValueType::kBFloat16;
    if (p.device() != device || p.scalar_type() != at::kFloat || !p.is_contiguous() || !same_device_contiguous(g, p) ||
        !value_type(g.scalar_type(), grad_type) || !same_device_contiguous(m, p) || !same_device_contiguous(v, p) ||
        m.scalar_type() != at::kFloat || v.scalar_type() != at::kFloat || step.device() != device ||
        step.scalar_type() != at::kFloat || step.numel() != 1 ||
        (copy.defined() && (!same_device_contiguous(copy, p) || !value_type(copy.scalar_type(), copy_type)))) {
      return false;
    }
    const std::size_t grad_bytes = g.element_size() * 4;
    detail::AdamTensorArgs a{};
    a.param = p.data_ptr<float>();
    a.grad = g.data_ptr();
    a.exp_avg = m.data_ptr<float>();
    a.exp_avg_sq = v.data_ptr<float>();
    a.copy = copy.defined() ? copy.data_ptr() : nullptr;
    a.step = step.data_ptr<float>();
    a.numel = p.numel();
    a.vector = aligned(a.param, 16) && aligned(a.exp_avg, 16) && aligned(a.exp_avg_sq, 16) &&
               aligned(a.grad, grad_bytes) && (a.copy == nullptr || aligned(a.copy, copy.element_size() * 4));
    if (a.numel > 0) launches[{static_cast<int>(grad_type), static_cast<int>(copy_type)}].push_back(a);
  }
  const c10::cuda::CUDAGuard guard(device);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  for (auto& [types, table] : launches) {
    std::int64_t chunks = 0;
    for (auto& a : table) {
      a.first_chunk = chunks;
      chunks += util::chunks_of(a.numel, detail::kAdamChunk);
    }
    const at::Tensor on_device = detail::table_on_device(table, device);
    detail::AdamLaunchHyper hyper{h.lr, h.beta1, h.beta2, h.eps, h.weight_decay, static_cast<float>(grad_scale),
                                  device_scale, h.adam_w_mode};
    const cudaError_t err = detail::launch_adam_master_step(
        static_cast<AdamValueType>(types.first), static_cast<AdamValueType>(types.second),
        static_cast<const detail::AdamTensorArgs*>(on_device.data_ptr()), static_cast<int>(table.size()), chunks,
        hyper, stream);
    if (err != cudaSuccess) throw JobError(std::string("device Adam step launch failed: ") + cudaGetErrorString(err));
  }
  return true;
}

bool device_adam_available() { return true; }

#else

bool device_adam_step(const std::vector<at::Tensor>&, const std::vector<at::Tensor>&, const std::vector<ParamState*>&,
                      const std::vector<at::Tensor>&, const Hyper&, double, const float*) {
  return false;
}

bool device_adam_available() { return false; }

#endif

}  // namespace deepspeed::optim
