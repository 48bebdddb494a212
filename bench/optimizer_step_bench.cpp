// Optimizer step time on GPT-2 shaped parameter lists: our fused Adam (LibTorch's multi-tensor kernel), the
// per-tensor reference loop, and the same fused kernel on one flat tensor (how ZeRO stages 1–2 call it).
//
//   optimizer_step_bench [--model 124M|350M|774M|1.5B] [--steps N] [--device cuda|cpu]
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <CLI/CLI.hpp>
#include <c10/cuda/CUDAFunctions.h>

#include "deepspeed/optim/optimizer.h"

namespace {

struct Shape {
  int layers;
  int width;
};

Shape shape_of(const std::string& name) {
  if (name == "124M") return {12, 768};
  if (name == "350M") return {24, 1024};
  if (name == "774M") return {36, 1280};
  if (name == "1.5B") return {48, 1600};
  throw std::runtime_error("--model: expected 124M, 350M, 774M or 1.5B");
}

// GPT-2's parameter tensors (tied embeddings): what a real optimizer step iterates over.
std::vector<std::vector<std::int64_t>> gpt2_shapes(Shape s) {
  const std::int64_t d = s.width;
  std::vector<std::vector<std::int64_t>> shapes = {{50257, d}, {1024, d}};
  for (int l = 0; l < s.layers; ++l) {
    for (auto shape : std::vector<std::vector<std::int64_t>>{{d}, {d}, {d, 3 * d}, {3 * d}, {d, d}, {d}, {d}, {d},
                                                             {d, 4 * d}, {4 * d}, {4 * d, d}, {d}}) {
      shapes.push_back(shape);
    }
  }
  shapes.push_back({d});
  shapes.push_back({d});
  return shapes;
}

void sync(const at::Device& device) {
  if (device.is_cuda()) c10::cuda::device_synchronize();
}

double time_steps(deepspeed::optim::Optimizer& opt, const at::Device& device, int steps) {
  opt.step();  // warm-up: allocates state
  sync(device);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) opt.step();
  sync(device);
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() / steps;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"optimizer step benchmark"};
  std::string model = "124M", device_name = "cuda";
  int steps = 20;
  app.add_option("--model", model);
  app.add_option("--steps", steps);
  app.add_option("--device", device_name);
  CLI11_PARSE(app, argc, argv);
  const at::Device device(device_name);
  const auto shapes = gpt2_shapes(shape_of(model));

  std::vector<at::Tensor> params;
  std::int64_t numel = 0;
  for (const auto& shape : shapes) {
    params.push_back(at::randn(shape, at::TensorOptions().device(device)));
    params.back().mutable_grad() = at::randn_like(params.back());
    numel += params.back().numel();
  }
  at::Tensor flat = at::randn({numel}, at::TensorOptions().device(device));
  flat.mutable_grad() = at::randn_like(flat);

  deepspeed::config::OptimizerConfig c;
  c.type = "adamw";
  c.weight_decay = 0.01;
  auto fused = deepspeed::optim::make_optimizer(c, {{params, {}, {}}});
  auto flat_fused = deepspeed::optim::make_optimizer(c, {{{flat}, {}, {}}});
  c.torch_adam = true;
  auto loop = deepspeed::optim::make_optimizer(c, {{params, {}, {}}});

  // Adam reads p, g, m, v and writes p, m, v: 7 fp32 values per parameter.
  const double bytes = 28.0 * static_cast<double>(numel);
  std::printf("model %s: %lld parameters in %zu tensors on %s\n", model.c_str(), static_cast<long long>(numel),
              shapes.size(), device_name.c_str());
  std::printf("| variant | ms/step | Gparams/s | GB/s |\n|---|---|---|---|\n");
  for (auto [name, opt] : {std::pair{"fused multi-tensor (FusedAdam)", fused.get()},
                           std::pair{"per-tensor loop (torch_adam)", loop.get()},
                           std::pair{"fused, one flat tensor (ZeRO shard)", flat_fused.get()}}) {
    const double ms = time_steps(*opt, device, steps);
    std::printf("| %s | %.3f | %.2f | %.0f |\n", name, ms, numel / ms / 1e6, bytes / ms / 1e6);
  }
  return 0;
}
