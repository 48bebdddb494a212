#include "deepspeed/optim/clip.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>
#include <unordered_map>

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>

namespace deepspeed::optim {

namespace {

// Σx² of a CPU tensor: runs of 1024 elements summed in fp32 over 8 lanes (vectorizable), runs added in fp64,
// blocks in a fixed order, so the result does not depend on the thread count. LibTorch's norm with fp64
// accumulation runs at ~0.1 G elements/s per thread on the CPU, too slow for offloaded gradients (seconds
// per step at a few billion parameters); this runs at memory speed.
double cpu_squared_sum(const at::Tensor& tensor) {
  const at::Tensor t = tensor.contiguous();
  const std::int64_t n = t.numel();
  constexpr std::int64_t kBlock = std::int64_t{1} << 16;
  const std::int64_t blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> partial(static_cast<std::size_t>(blocks), 0.0);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, t.scalar_type(), "cpu_squared_sum", [&] {
    const scalar_t* data = t.data_ptr<scalar_t>();
    at::parallel_for(0, blocks, 1, [&](std::int64_t first, std::int64_t last) {
      for (std::int64_t b = first; b < last; ++b) {
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
    });
  });
  double total = 0.0;
  for (double p : partial) total += p;
  return total;
}

}  // namespace

double squared_l2_norm(const std::vector<at::Tensor>& tensors) {
  if (tensors.empty()) return 0.0;
  at::NoGradGuard no_grad;
  // Device tensors: per-tensor norms accumulated in fp32, then one host sync for all of them. Host tensors
  // (offloaded gradients, CPU training): cpu_squared_sum.
  std::unordered_map<c10::Device, std::vector<at::Tensor>> norms;
  double sum = 0.0;
  for (const auto& t : tensors) {
    if (t.device().is_cpu()) {
      sum += cpu_squared_sum(t);
    } else {
      norms[t.device()].push_back(at::linalg_vector_norm(t, 2, std::nullopt, false, at::kFloat).to(at::kDouble));
    }
  }
  for (auto& [device, list] : norms) sum += at::stack(list).square().sum().item<double>();
  return sum;
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
