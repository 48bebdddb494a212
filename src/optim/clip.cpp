#include "deepspeed/optim/clip.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

namespace deepspeed::optim {

double squared_l2_norm(const std::vector<at::Tensor>& tensors) {
  if (tensors.empty()) return 0.0;
  at::NoGradGuard no_grad;
  // Per-tensor norms accumulated in fp32 on the GPU (fp64 on CPU), then one host sync per device for all of
  // them (offload keeps some gradients on the host, the rest on the device).
  std::unordered_map<c10::Device, std::vector<at::Tensor>> norms;
  for (const auto& t : tensors) {
    const auto acc = t.is_cuda() ? at::kFloat : at::kDouble;
    norms[t.device()].push_back(at::linalg_vector_norm(t, 2, std::nullopt, false, acc).to(at::kDouble));
  }
  double sum = 0.0;
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
