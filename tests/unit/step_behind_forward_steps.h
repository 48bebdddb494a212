#pragma once
// DS_STEP_BEHIND_FORWARD=1 end to end: a model with ZeRO-3 units trained through the engine at stage 0 with the
// step run in parts behind the next forward, against the same run with the whole step at the step, on the
// engine's device (step_behind_forward_test.cpp: where CI runs; step_behind_forward_gpu_test.cpp: on a GPU,
// where the parts run on a side stream and each unit's forward waits for its own).
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/functional/activation.h>
#include <torch/nn/functional/loss.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "deepspeed/deepspeed.h"
#include "deepspeed/zero/unit.h"
#include "tests/support/engine_internals.h"
#include "tests/support/scoped_env.h"

namespace deepspeed::testing {

// Three blocks as units and a gain outside them (the root, like GPT-2's embeddings), used first and last.
struct UnitNetImpl : torch::nn::Module {
  explicit UnitNetImpl(bool with_units) {
    fc1 = register_module("fc1", torch::nn::Linear(64, 128));
    fc2 = register_module("fc2", torch::nn::Linear(128, 128));
    fc3 = register_module("fc3", torch::nn::Linear(128, 32));
    gain = register_parameter("gain", at::ones({64}));
    if (with_units) units = {zero::Unit(fc1), zero::Unit(fc2), zero::Unit(fc3)};
  }
  at::Tensor block(std::size_t i, const at::Tensor& x) {
    if (!units.empty()) return units[i](x);
    return i == 0 ? fc1(x) : i == 1 ? fc2(x) : fc3(x);
  }
  at::Tensor forward(const at::Tensor& x) {
    const at::Tensor h = torch::gelu(block(1, torch::gelu(block(0, x * gain))));
    return block(2, h) * gain.mean();
  }
  torch::nn::Linear fc1{nullptr}, fc2{nullptr}, fc3{nullptr};
  at::Tensor gain;
  std::vector<zero::Unit> units;
};
TORCH_MODULE(UnitNet);

struct UnitNetRun {
  std::vector<at::Tensor> weights;  // every parameter after the run, on the CPU
  std::vector<double> losses;       // each micro-step's, read after the run
  std::int64_t steps_behind = 0;    // steps the layout ran behind the forward
  bool on_cuda = false;
};

/// `steps` optimizer steps of `gas` micro-steps each, AdamW with clipping, bf16 or fp32, with or without the
/// switch and the units; the same seeds and batches for every variant.
inline UnitNetRun train_unit_net(bool behind, bool bf16, int gas, int steps, bool with_units = true) {
  const ScopedEnv env("DS_STEP_BEHIND_FORWARD", behind ? "1" : nullptr);
  torch::manual_seed(11);
  UnitNet net(with_units);
  deepspeed::InitializeOptions options;
  options.config = deepspeed::config::Json{
      {"train_micro_batch_size_per_gpu", 8},
      {"gradient_accumulation_steps", gas},
      {"gradient_clipping", 0.5},
      {"steps_per_print", 1000},
      {"bf16", {{"enabled", bf16}}},
      {"optimizer", {{"type", "AdamW"}, {"params", {{"lr", 1e-2}, {"weight_decay", 0.01}}}}},
  };
  auto args = std::make_shared<deepspeed::Arguments>();
  auto [engine, opt, loader, sched] = deepspeed::initialize(args, net, net->parameters(), nullptr, options);
  const c10::Device device = engine.device();
  std::vector<at::Tensor> losses;
  for (int s = 0; s < steps * gas; ++s) {
    torch::manual_seed(100 + s);
    const at::Tensor x = torch::randn({8, 64}).to(device), y = torch::randn({8, 32}).to(device);
    const at::Tensor loss = torch::nn::functional::mse_loss(engine(bf16 ? x.to(at::kBFloat16) : x).to(at::kFloat), y);
    engine.backward(loss);
    engine.step();
    losses.push_back(loss.detach());
  }
  UnitNetRun run;
  auto& layout = EngineInternals::zero(engine);
  run.steps_behind = layout.steps_behind_forward();
  run.on_cuda = device.is_cuda();
  // A unit's weights read directly between step() and the next forward may still be updating on the side
  // stream: read them as a checkpoint would, through a gather, which waits for the whole step.
  layout.gather(0);
  for (const auto& p : net->parameters()) run.weights.push_back(p.detach().to(at::kCPU, at::kFloat).clone());
  layout.release(0);
  for (const auto& l : losses) run.losses.push_back(l.item<double>());
  return run;
}

/// The run with the switch equals the run without it bit for bit (weights and every loss), and it did run
/// every step behind the forward (or none, without units).
inline void expect_behind_equals_whole(bool bf16, int gas, bool with_units = true) {
  constexpr int kSteps = 4;
  const UnitNetRun whole = train_unit_net(false, bf16, gas, kSteps, with_units);
  const UnitNetRun behind = train_unit_net(true, bf16, gas, kSteps, with_units);
  EXPECT_EQ(whole.steps_behind, 0);
  EXPECT_EQ(behind.steps_behind, with_units ? kSteps : 0);
  ASSERT_EQ(whole.weights.size(), behind.weights.size());
  for (std::size_t i = 0; i < whole.weights.size(); ++i) {
    EXPECT_TRUE(at::equal(whole.weights[i], behind.weights[i])) << "parameter " << i;
  }
  EXPECT_EQ(whole.losses, behind.losses);
  EXPECT_NE(whole.losses.front(), whole.losses.back()) << "the run is meant to train";
}

}  // namespace deepspeed::testing
