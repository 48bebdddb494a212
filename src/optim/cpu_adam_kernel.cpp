// CPU Adam dispatch: ISA detection, per-step constants, OpenMP tiling, and the tensor-level entry point.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include <omp.h>

#include <ATen/ATen.h>

#include "deepspeed/optim/cpu_adam.h"
#include "src/optim/adam_internal.h"
#include "src/optim/cpu_adam_kernels.h"

namespace deepspeed::optim {

namespace {

// __builtin_cpu_init() makes the checks valid even when called from another static initialiser (libgcc's own
// initialiser may not have run yet); it is idempotent. libgcc also checks that the OS saves the AVX state.
bool has_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl");
}
bool has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}

// Elements per OpenMP work item: ~1 MB of traffic each, so scheduling costs nothing measurable, yet shards of
// a few hundred thousand elements still split across threads (smaller ones stay on the caller: waking the
// team costs more than it saves). A multiple of every vector width, so only a shard's last item has a tail.
constexpr std::size_t kBlock = std::size_t{1} << 16;

detail::AdamConsts fold_constants(const Hyper& h, std::int64_t step, float grad_scale) {
  // Powers and roots in double, rounded once: the result does not depend on how many steps were taken in
  // one process (DeepSpeed tracks β^t incrementally in fp32, which drifts slightly).
  const double t = static_cast<double>(step);
  const double bc1 = h.bias_correction ? 1.0 - std::pow(h.beta1, t) : 1.0;
  const double bc2 = h.bias_correction ? 1.0 - std::pow(h.beta2, t) : 1.0;
  const bool decay = h.weight_decay > 0;
  detail::AdamConsts k{};
  k.beta1 = static_cast<float>(h.beta1);
  k.beta2 = static_cast<float>(h.beta2);
  k.one_minus_beta1 = static_cast<float>(1.0 - h.beta1);
  k.one_minus_beta2 = static_cast<float>(1.0 - h.beta2);
  k.eps = static_cast<float>(h.eps);
  k.step_size = static_cast<float>(-h.lr / bc1);
  k.bc2_rsqrt = static_cast<float>(1.0 / std::sqrt(bc2));
  k.l2 = decay && !h.adam_w_mode;
  k.decoupled = decay && h.adam_w_mode;
  // Decoupled decay multiplies by fp32(1 - lr·wd), as torch.optim.AdamW and LibTorch's fused kernels do,
  // rather than DeepSpeed's p += (-lr·wd)·p: that factor's rounding compounds over steps (≈1e-8 relative
  // per step at lr·wd = 1e-3), and the offloaded and on-device (FusedAdam) paths should follow one trajectory.
  k.decay = static_cast<float>(k.decoupled ? 1.0 - h.lr * h.weight_decay : h.weight_decay);
  k.grad_scale = grad_scale;
  k.scaled = grad_scale != 1.0f;
  return k;
}

detail::AdamKernel select_kernel(CpuIsa isa, detail::GradKind g, detail::CopyKind c) {
  switch (isa) {
    case CpuIsa::kAvx512: return detail::avx512_adam_kernel(g, c);
    case CpuIsa::kAvx2: return detail::avx2_adam_kernel(g, c);
    case CpuIsa::kScalar: return detail::scalar_adam_kernel(g, c);
  }
  return nullptr;
}

std::size_t elem_bytes(ElemType t) { return t == ElemType::kFloat32 ? 4 : 2; }

void check_buffer(const at::Tensor& t, const char* what, std::int64_t numel) {
  if (!t.defined() || !t.device().is_cpu() || !t.is_contiguous() || t.numel() != numel) {
    throw std::invalid_argument(std::string("cpu_adam_step: ") + what +
                                " must be a contiguous CPU tensor with the parameter's numel");
  }
}

}  // namespace

ElemType elem_type_of(const at::Tensor& t, const char* what, bool allow_fp32) {
  switch (t.scalar_type()) {
    case at::kFloat:
      if (allow_fp32) return ElemType::kFloat32;
      break;
    case at::kBFloat16: return ElemType::kBFloat16;
    case at::kHalf: return ElemType::kFloat16;
    default: break;
  }
  throw std::invalid_argument(std::string("cpu_adam_step: ") + what + " has unsupported dtype " +
                              std::string(c10::toString(t.scalar_type())));
}

bool cpu_isa_supported(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kAvx512: return has_avx512();
    case CpuIsa::kAvx2: return has_avx2();
    case CpuIsa::kScalar: return true;
  }
  return false;
}

CpuIsa best_cpu_isa() {
  static const CpuIsa best = has_avx512() ? CpuIsa::kAvx512 : has_avx2() ? CpuIsa::kAvx2 : CpuIsa::kScalar;
  return best;
}

const char* cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kAvx512: return "AVX512";
    case CpuIsa::kAvx2: return "AVX2";
    case CpuIsa::kScalar: return "scalar";
  }
  return "?";
}

void cpu_adam_step(const Hyper& h, std::int64_t step, const CpuAdamShard& s, const CpuAdamExec& exec) {
  if (h.amsgrad) throw std::invalid_argument("DeepSpeedCPUAdam does not support amsgrad");
  if (step < 1) throw std::invalid_argument("cpu_adam_step: step is 1-based");
  if (!cpu_isa_supported(exec.isa)) {
    throw std::invalid_argument(std::string("cpu_adam_step: this CPU cannot run ") + cpu_isa_name(exec.isa));
  }
  if (s.param_copy != nullptr && s.copy_type == ElemType::kFloat32) {
    throw std::invalid_argument("cpu_adam_step: param_copy must be bf16 or fp16");
  }
  if (s.numel == 0) return;
  const auto copy = s.param_copy == nullptr              ? detail::CopyKind::kNone
                    : s.copy_type == ElemType::kBFloat16 ? detail::CopyKind::kBFloat16
                                                         : detail::CopyKind::kFloat16;
  const auto kernel = select_kernel(exec.isa, static_cast<detail::GradKind>(s.grad_type), copy);
  detail::AdamConsts k = fold_constants(h, step, s.grad_scale);
  k.stream_copy = exec.stream_copy;

  const std::size_t blocks = (s.numel + kBlock - 1) / kBlock;
  const int most = exec.threads > 0 ? exec.threads : omp_get_max_threads();
  const int threads = exec.parallel ? std::min<int>(most, static_cast<int>(blocks)) : 1;
  const std::size_t gb = elem_bytes(s.grad_type);
  const auto* g = static_cast<const unsigned char*>(s.grads);
  auto* c = static_cast<unsigned char*>(s.param_copy);
  auto block = [&](std::size_t off, std::size_t len) {
    if (s.backup != nullptr) {
      // Just before the kernel: it then reads these lines from cache, not memory.
      std::memcpy(s.backup + off, s.params + off, len * 4);
      std::memcpy(s.backup + s.numel + off, s.exp_avg + off, len * 4);
      std::memcpy(s.backup + 2 * s.numel + off, s.exp_avg_sq + off, len * 4);
    }
    kernel(k, s.params + off, g + off * gb, s.exp_avg + off, s.exp_avg_sq + off, c ? c + off * 2 : nullptr, len);
  };
  if (threads <= 1) {
    for (std::size_t off = 0; off < s.numel; off += kBlock) block(off, std::min(kBlock, s.numel - off));
    return;
  }
  // Static schedule: each thread walks one contiguous run of blocks, which suits the hardware prefetchers.
#pragma omp parallel for schedule(static) num_threads(threads)
  for (std::int64_t b = 0; b < static_cast<std::int64_t>(blocks); ++b) {
    const std::size_t off = static_cast<std::size_t>(b) * kBlock;
    block(off, std::min(kBlock, s.numel - off));
  }
}

void cpu_adam_step(const Hyper& h, std::int64_t step, const at::Tensor& params, const at::Tensor& grads,
                   const at::Tensor& exp_avg, const at::Tensor& exp_avg_sq, const at::Tensor& param_copy,
                   const CpuAdamExec& exec, float grad_scale) {
  const std::int64_t n = params.numel();
  check_buffer(params, "params", n);
  check_buffer(grads, "grads", n);
  check_buffer(exp_avg, "exp_avg", n);
  check_buffer(exp_avg_sq, "exp_avg_sq", n);
  if (params.scalar_type() != at::kFloat || exp_avg.scalar_type() != at::kFloat ||
      exp_avg_sq.scalar_type() != at::kFloat) {
    throw std::invalid_argument("cpu_adam_step: params, exp_avg and exp_avg_sq must be fp32");
  }
  CpuAdamShard s;
  s.params = params.data_ptr<float>();
  s.grads = grads.data_ptr();
  s.grad_type = elem_type_of(grads, "grads", /*allow_fp32=*/true);
  s.exp_avg = exp_avg.data_ptr<float>();
  s.exp_avg_sq = exp_avg_sq.data_ptr<float>();
  if (param_copy.defined()) {
    check_buffer(param_copy, "param_copy", n);
    s.param_copy = param_copy.data_ptr();
    s.copy_type = elem_type_of(param_copy, "param_copy", /*allow_fp32=*/false);
  }
  s.numel = static_cast<std::size_t>(n);
  s.grad_scale = grad_scale;
  cpu_adam_step(h, step, s, exec);
}

}  // namespace deepspeed::optim
