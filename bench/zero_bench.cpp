// Model-state memory and step time of ZeRO stages 0–3 on a deep bf16 MLP (≈1.07B parameters by default),
// one process per GPU through the launcher:
//
//   deepspeed --num_gpus 4 build/bench/zero_bench --stage 2 [--layers 64 --width 4096 --micro 8 --steps 10]
//
// Rank 0 prints one markdown row: measured model-state bytes per rank (allocated between steps, when no
// activations are alive) against the ZeRO paper's formula for mixed-precision Adam, peak memory and step time.
#include <chrono>
#include <cstdio>

#include <ATen/ATen.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>

#include "deepspeed/deepspeed.h"
#include "deepspeed/engine/timers.h"
#include "deepspeed/zero/unit.h"

namespace {

struct DeepMlpImpl : torch::nn::Module {
  DeepMlpImpl(int layers, int width) {
    for (int i = 0; i < layers; ++i) {
      torch::nn::Linear layer(torch::nn::LinearOptions(width, width).bias(false));
      blocks->push_back(layer);
      units.emplace_back(layer);  // a ZeRO-3 unit per layer (no effect in stages 0-2)
    }
    register_module("blocks", blocks);
  }
  at::Tensor forward(at::Tensor x) {
    for (auto& unit : units) x = at::relu(unit(x));
    return x;
  }
  torch::nn::ModuleList blocks;
  std::vector<deepspeed::zero::Unit> units;
};
TORCH_MODULE(DeepMlp);

double gib(double bytes) { return bytes / (1024.0 * 1024.0 * 1024.0); }

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ZeRO memory and step-time benchmark"};
  int layers = 64, width = 4096, micro = 8, steps = 10, stage = 0;
  std::int64_t bucket = 500000000;
  app.add_option("--layers", layers);
  app.add_option("--width", width);
  app.add_option("--micro", micro);
  app.add_option("--steps", steps);
  app.add_option("--stage", stage);
  app.add_option("--reduce_bucket_size", bucket);
  auto ds_args = deepspeed::add_config_arguments(app);
  deepspeed::parse_arguments(app, argc, argv);

  DeepMlp model(layers, width);
  std::int64_t psi = 0;  // counted now: under ZeRO-3 parameters are empty outside their units
  for (const auto& p : model->parameters()) psi += p.numel();
  deepspeed::InitializeOptions options;
  options.config = deepspeed::config::Json{
      {"train_micro_batch_size_per_gpu", micro},
      {"bf16", {{"enabled", true}}},
      // 16-bit gradient accumulation: the ZeRO paper's formula assumes 2-byte gradients.
      {"data_types", {{"grad_accum_dtype", "bf16"}}},
      {"zero_optimization", {{"stage", stage}, {"reduce_bucket_size", bucket}, {"allgather_bucket_size", bucket}}},
      {"optimizer", {{"type", "AdamW"}, {"params", {{"lr", 1e-4}, {"weight_decay", 0.01}}}}}};
  auto [engine, optimizer, loader, scheduler] =
      deepspeed::initialize(ds_args, model, model->parameters(), nullptr, options);
  const auto device = engine.device();
  const auto x = at::randn({micro, width}, at::TensorOptions().device(device));

  double total_ms = 0;
  std::int64_t model_state_bytes = 0;
  for (int step = 0; step < steps; ++step) {
    deepspeed::engine::synchronize_device(device);
    const auto start = std::chrono::steady_clock::now();
    auto loss = engine(x).to(at::kFloat).pow(2).mean();
    engine.backward(loss);
    engine.step();
    deepspeed::engine::synchronize_device(device);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (step >= 2) total_ms += ms;  // the first steps allocate optimizer state and warm up NCCL
    if (step == 1) model_state_bytes = deepspeed::engine::memory_allocated(device);
  }
  const int n = engine.world_size();
  const double formula = stage == 0   ? 16.0 * psi
                         : stage == 1 ? 4.0 * psi + 12.0 * psi / n
                         : stage == 2 ? 2.0 * psi + 14.0 * psi / n
                                      : 16.0 * psi / n;
  if (engine.global_rank() == 0) {
    const double ms = total_ms / std::max(1, steps - 2);
    std::printf("| %d | %d | %.3fB | %.2f | %.2f | %.3f | %.2f | %.1f | %.0f |\n", stage, n, psi / 1e9,
                gib(static_cast<double>(model_state_bytes)), gib(formula), model_state_bytes / formula,
                gib(static_cast<double>(deepspeed::engine::max_memory_allocated(device))), ms,
                micro * n / (ms / 1000.0));
  }
  return 0;
}
