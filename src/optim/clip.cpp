#include "deepspeed/optim/clip.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <vector>
#include <unordered_map>

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/core/GradMode.h>
#include <omp.h>

#include "deepspeed/util/error.h"
#include "src/optim/multi_tensor_norm.h"

#ifdef DS_WITH_CUDA_NORM
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "src/optim/squared_sum_kernel.h"
#include "src/util/value_type_of.h"
#endif

namespace deepspeed::optim {

namespace {

// Σx² of a CPU tensor: runs of 1024 elements summed in fp32 over 8 lanes (vectorizable), runs added in fp64,
// blocks in a fixed order, so the result does not depend on the thread count. LibTorch's norm with fp64
// accumulation runs at ~0.1 G elements/s per thread on the CPU, too slow for offloaded gradients (seconds
// per step at a few billion parameters); this runs at memory speed. OpenMP directly rather than
// at::parallel_for: the thread count is the caller's (super_offload keeps the norm on the cores its
// speculative updates leave), not LibTorch's pool size.
// The device kernel (squared_sum_kernel.cu) sums in this same order; keep them in step.
template <typename T>
double squared_sum(const T* data, std::int64_t n, int threads) {
  constexpr std::int64_t kBlock = std::int64_t{1} << 16;
  const std::int64_t blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> partial(static_cast<std::size_t>(blocks), 0.0);
  const int most = threads > 0 ? threads : omp_get_max_threads();
  const int team = static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(most, blocks)));
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
  for (std::int64_t b = 0; b < blocks; ++b) {
    const std::int64_t hi = std::min(n, (b + 1) * kBlock);
    double sum = 0.0;
    for (std::int64_t run = b * kBlock; run < hi; run += 1024) {
      const std::int64_t end = std::min(hi, run + 1024);
      float lanes[8] = {};
      std::int64_t i = run;
      for (; i + 8 <= end; i += 8) {
        for (int k = 0; k < 8; ++k) {
          const float v = static_cast<float>(data[i + k]);
          lanes[k] += v * v;
        }
      }
      for (; i < end; ++i) {
        const float v = static_cast<float>(data[i]);
        lanes[0] += v * v;
      }
      for (float lane : lanes) sum += lane;
    }
    partial[static_cast<std::size_t>(b)] = sum;
  }
  double total = 0.0;
  for (double p : partial) total += p;
  return total;
}

double cpu_squared_sum(const at::Tensor& tensor, int threads) {
  const at::Tensor t = tensor.contiguous();
  double sum = 0.0;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, t.scalar_type(), "cpu_squared_sum",
                                  [&] { sum = squared_sum(t.data_ptr<scalar_t>(), t.numel(), threads); });
  return sum;
}

}  // namespace

double squared_l2_norm(const std::vector<at::Tensor>& tensors, int threads) {
  if (tensors.empty()) return 0.0;
  at::NoGradGuard no_grad;
  // Host tensors (offloaded gradients, CPU training): cpu_squared_sum. Device tensors: one sum per device,
  // then one host read per device.
  std::unordered_map<c10::Device, std::vector<at::Tensor>> on_device;
  double sum = 0.0;
  for (const auto& t : tensors) {
    if (t.device().is_cpu()) sum += cpu_squared_sum(t, threads);
    else on_device[t.device()].push_back(t);
  }
  for (auto& [device, list] : on_device) sum += squared_l2_norm_tensor(list, threads).item<double>();
  return sum;
}

at::Tensor squared_l2_norm_tensor(const std::vector<at::Tensor>& tensors, int threads) {
  at::NoGradGuard no_grad;
  if (tensors.empty()) return at::zeros({}, at::kDouble);
  const c10::Device device = tensors.front().device();
  for (const auto& t : tensors) {
    if (t.device() != device) throw std::invalid_argument("squared_l2_norm_tensor: tensors on several devices");
  }
  if (device.is_cpu()) {
    double sum = 0.0;
    for (const auto& t : tensors) sum += cpu_squared_sum(t, threads);
    return at::scalar_tensor(sum, at::kDouble);
  }
  if (detail::multi_tensor_norm_enabled()) {
    if (auto sum = detail::multi_tensor_squared_sum(tensors)) return *sum;
  }
  // The reference: per-tensor norms accumulated in fp32, squared and summed in fp64. LibTorch's multi-tensor
  // norm launches a kernel per 320 chunks of 65,536 values of one dtype, whatever the number of tensors.
  std::map<at::ScalarType, std::vector<at::Tensor>> by_dtype;
  for (const auto& t : tensors) by_dtype[t.scalar_type()].push_back(t);
  std::vector<at::Tensor> norms;
  for (const auto& [dtype, list] : by_dtype) {
    for (auto& n : at::_foreach_norm(list, 2, at::kFloat)) norms.push_back(std::move(n));
  }
  return at::stack(norms).to(at::kDouble).square().sum();
}

at::Tensor gradient_factor(const at::Tensor& squared, double max_norm, double loss_scale) {
  at::NoGradGuard no_grad;
  const at::Tensor sq = squared.to(at::kDouble);
  at::Tensor factor = at::full({}, 1.0 / loss_scale, sq.options());
  if (max_norm > 0.0) {
    // ÷ a device tensor, not a scalar: ATen's CUDA division by a scalar multiplies by its reciprocal, which can
    // differ from the host's quotient in the last bit.
    const at::Tensor norm = sq.sqrt().div(at::full({}, loss_scale, sq.options()));
    const at::Tensor ratio = at::div(at::full({}, max_norm, sq.options()), norm.add(1e-6));
    // std::min(1.0, ratio) keeps 1 unless ratio < 1: a NaN ratio gives 1 there, so it must here.
    factor = factor.mul(at::where(ratio.lt(1.0), ratio, at::full({}, 1.0, sq.options())));
  }
  return factor;
}

bool device_squared_sum_available() {
#ifdef DS_WITH_CUDA_NORM
  return true;
#else
  return false;
#endif
}

at::Tensor device_squared_sum(const at::Tensor& t) {
#ifdef DS_WITH_CUDA_NORM
  const auto type = util::value_type_of(t.scalar_type());
  if (!t.is_cuda() || !t.is_contiguous() || !type) {
    throw std::invalid_argument("device_squared_sum: needs a contiguous fp32/bf16/fp16 CUDA tensor");
  }
  const c10::cuda::CUDAGuard guard(t.device());
  const auto options = t.options().dtype(at::kDouble);
  const std::int64_t blocks = (t.numel() + detail::kSquaredSumBlock - 1) / detail::kSquaredSumBlock;
  at::Tensor partial = at::empty({std::max<std::int64_t>(blocks, 1)}, options);
  at::Tensor out = at::empty({}, options);
  const cudaError_t err = detail::launch_host_order_squared_sum(*type, t.data_ptr(), t.numel(), partial.data_ptr<double>(),
                                                                out.data_ptr<double>(),
                                                                c10::cuda::getCurrentCUDAStream().stream());
  if (err != cudaSuccess) throw JobError(std::string("device_squared_sum launch failed: ") + cudaGetErrorString(err));
  return out;
#else
  (void)t;
  throw std::invalid_argument("device_squared_sum: this build has no CUDA kernels");
#endif
}

double l2_norm(const std::vector<at::Tensor>& tensors) { return std::sqrt(squared_l2_norm(tensors)); }

double clip_by_norm(const std::vector<at::Tensor>& tensors, double max_norm, double total_norm) {
  const double coefficient = std::min(1.0, max_norm / (total_norm + 1e-6));
  if (coefficient < 1.0) {
    at::NoGradGuard no_grad;
    for (at::Tensor t : tensors) t.mul_(coefficient);
  }
  return coefficient;
}

}  // namespace deepspeed::optim
