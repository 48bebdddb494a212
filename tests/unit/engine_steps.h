#pragma once
// The engine's steps against hand-written ones, on whatever device the engine picked (engine_clip_test.cpp runs
// them where CI runs, engine_gpu_test.cpp on a GPU). Expected values come from the same model stepped by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/functional/loss.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>
#include <torch/optim/adamw.h>

#include "deepspeed/deepspeed.h"

namespace deepspeed::testing {

struct MlpImpl : torch::nn::Module {
  MlpImpl() : fc1(register_module("fc1", torch::nn::Linear(64, 256))), fc2(register_module("fc2", torch::nn::Linear(256, 32))) {}
  at::Tensor forward(const at::Tensor& x) { return fc2(torch::gelu(fc1(x))); }
  torch::nn::Linear fc1, fc2;
};
TORCH_MODULE(Mlp);

inline double squared_sum(const std::vector<at::Tensor>& grads) {
  double sum = 0.0;
  for (const auto& g : grads) sum += g.to(at::kDouble).square().sum().item<double>();
  return sum;
}

/// An fp32 Linear(5, 3) at stage 0 with AdamW and `clip`: the norm get_global_grad_norm() reports and the
/// parameters after each of four steps, against torch::optim::AdamW on gradients clipped by hand.
inline void fp32_steps_against_reference(double clip) {
  torch::manual_seed(3);
  torch::nn::Linear net(5, 3), ref(5, 3);
  {
    torch::NoGradGuard no_grad;
    ref->weight.copy_(net->weight);
    ref->bias.copy_(net->bias);
  }
  deepspeed::InitializeOptions options;
  options.config = deepspeed::config::Json{
      {"train_micro_batch_size_per_gpu", 4},
      {"gradient_clipping", clip},
      {"steps_per_print", 1000},
      {"optimizer", {{"type", "AdamW"}, {"params", {{"lr", 0.1}, {"weight_decay", 0.01}}}}},
  };
  auto args = std::make_shared<deepspeed::Arguments>();
  auto [engine, opt, loader, sched] = deepspeed::initialize(args, net, net->parameters(), nullptr, options);
  ref->to(engine.device());
  torch::optim::AdamW ref_opt(ref->parameters(), torch::optim::AdamWOptions(0.1).weight_decay(0.01));
  for (int step = 0; step < 4; ++step) {
    const at::Tensor x = torch::randn({4, 5}).to(engine.device()), y = torch::randn({4, 3}).to(engine.device());
    engine.backward(torch::nn::functional::mse_loss(engine(x), y));
    engine.step();

    ref_opt.zero_grad();
    torch::nn::functional::mse_loss(ref(x), y).backward();
    std::vector<at::Tensor> grads;
    for (const auto& p : ref->parameters()) grads.push_back(p.grad());
    const double norm = std::sqrt(squared_sum(grads));
    const double factor = std::min(1.0, clip / (norm + 1e-6));
    if (clip < 1.0) EXPECT_LT(factor, 0.5) << "the test means clipping to happen";
    {
      torch::NoGradGuard no_grad;
      for (auto& g : grads) g.mul_(factor);
    }
    ref_opt.step();

    ASSERT_TRUE(engine.get_global_grad_norm().has_value());
    EXPECT_NEAR(*engine.get_global_grad_norm(), norm, 1e-6 * norm) << "step " << step;
    EXPECT_EQ(*engine.get_global_grad_norm(), *engine.get_global_grad_norm());  // read once, then kept
    const auto ours = net->parameters(), theirs = ref->parameters();
    for (std::size_t i = 0; i < ours.size(); ++i) {
      const double err = (ours[i] - theirs[i]).abs().max().item<double>();
      EXPECT_LT(err, 1e-6) << "step " << step << " parameter " << i;
    }
  }
}

/// A bf16 MLP at stage 0, GAS 1, with fp32 masters (the engine's) and `clip` (0: none), five steps against the
/// same bf16 forward and backward by hand, the gradients up-cast and clipped with the norm read on the host,
/// torch::optim::AdamW on fp32 masters, the masters rounded to bf16. On one rank this takes the engine's
/// shortest route: the bf16 gradients read as autograd made them, the clipping factor computed beside them.
inline void bf16_steps_against_reference(double clip) {
  torch::manual_seed(5);
  Mlp net, ref;
  std::vector<at::Tensor> masters;
  {
    torch::NoGradGuard no_grad;
    const auto ours = net->parameters(), theirs = ref->parameters();
    for (std::size_t i = 0; i < ours.size(); ++i) {
      masters.push_back(ours[i].detach().to(at::kBFloat16).to(at::kFloat));  // the engine's masters: the bf16 weights
      theirs[i].copy_(ours[i]);
    }
  }
  deepspeed::InitializeOptions options;
  options.config = deepspeed::config::Json{
      {"train_micro_batch_size_per_gpu", 16},
      {"gradient_clipping", clip},
      {"steps_per_print", 2},
      {"bf16", {{"enabled", true}}},
      {"optimizer", {{"type", "AdamW"}, {"params", {{"lr", 1e-3}, {"weight_decay", 0.01}}}}},
  };
  auto args = std::make_shared<deepspeed::Arguments>();
  auto [engine, opt, loader, sched] = deepspeed::initialize(args, net, net->parameters(), nullptr, options);
  const c10::Device device = engine.device();
  ref->to(device, at::kBFloat16);
  for (auto& m : masters) m = m.to(device).requires_grad_(true);
  torch::optim::AdamW ref_opt(masters, torch::optim::AdamWOptions(1e-3).weight_decay(0.01));
  for (int step = 0; step < 5; ++step) {
    const at::Tensor x = torch::randn({16, 64}).to(device), y = torch::randn({16, 32}).to(device);
    engine.backward(torch::nn::functional::mse_loss(engine(x).to(at::kFloat), y));
    engine.step();

    for (auto& p : ref->parameters()) p.mutable_grad().reset();
    torch::nn::functional::mse_loss(ref->forward(x.to(at::kBFloat16)).to(at::kFloat), y).backward();
    const auto params = ref->parameters();
    std::vector<at::Tensor> grads;
    for (const auto& p : params) grads.push_back(p.grad());
    const double norm = std::sqrt(squared_sum(grads));
    const double factor = clip > 0.0 ? std::min(1.0, clip / (norm + 1e-6)) : 1.0;
    if (clip > 0.0) EXPECT_LT(factor, 0.5) << "the test means clipping to happen";
    {
      torch::NoGradGuard no_grad;
      for (std::size_t i = 0; i < masters.size(); ++i) masters[i].mutable_grad() = grads[i].to(at::kFloat) * factor;
    }
    ref_opt.step();
    {
      torch::NoGradGuard no_grad;
      for (std::size_t i = 0; i < masters.size(); ++i) params[i].copy_(masters[i]);
    }

    if (clip > 0.0) {
      ASSERT_TRUE(engine.get_global_grad_norm().has_value());
      EXPECT_NEAR(*engine.get_global_grad_norm(), norm, 1e-5 * norm) << "step " << step;  // fp32 partial sums
    }
    const auto ours = net->parameters();
    for (std::size_t i = 0; i < ours.size(); ++i) {
      ASSERT_EQ(ours[i].scalar_type(), at::kBFloat16);
      // The same fp32 update up to rounding order: a master at a bf16 rounding boundary may round one step apart.
      const auto want = params[i].to(at::kFloat), diff = (ours[i].to(at::kFloat) - want).abs();
      const auto bound = want.abs() * std::ldexp(1.0, -7) + 1e-6;
      EXPECT_TRUE(at::all(diff <= bound).item<bool>())
          << "step " << step << " parameter " << i << ": max |diff| " << diff.max().item<double>();
    }
  }
}

}  // namespace deepspeed::testing
