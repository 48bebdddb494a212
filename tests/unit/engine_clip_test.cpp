// The engine's gradient clipping end to end against a hand-written step (one process, CPU): the norm that
// get_global_grad_norm() reports and the clipped AdamW update. Without loss scaling on an unsharded layout the
// engine computes the clipping factor beside the gradients and hands it to the optimizer as a tensor
// (EngineImpl::clip_on_device); this holds that route to DeepSpeed's arithmetic.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/functional/loss.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/adamw.h>

#include "deepspeed/deepspeed.h"

namespace {

double squared_sum(const std::vector<at::Tensor>& grads) {
  double sum = 0.0;
  for (const auto& g : grads) sum += g.to(at::kDouble).square().sum().item<double>();
  return sum;
}

void train_against_reference(double clip) {
  torch::manual_seed(3);
  torch::nn::Linear net(5, 3), ref(5, 3);
  {
    torch::NoGradGuard no_grad;
    ref->weight.copy_(net->weight);
    ref->bias.copy_(net->bias);
  }
  torch::optim::AdamW ref_opt(ref->parameters(), torch::optim::AdamWOptions(0.1).weight_decay(0.01));
  deepspeed::InitializeOptions options;
  options.config = deepspeed::config::Json{
      {"train_micro_batch_size_per_gpu", 4},
      {"gradient_clipping", clip},
      {"steps_per_print", 1000},
      {"optimizer", {{"type", "AdamW"}, {"params", {{"lr", 0.1}, {"weight_decay", 0.01}}}}},
  };
  auto args = std::make_shared<deepspeed::Arguments>();
  auto [engine, opt, loader, sched] = deepspeed::initialize(args, net, net->parameters(), nullptr, options);
  EXPECT_FALSE(engine.get_global_grad_norm().has_value() && clip <= 0.0);
  for (int step = 0; step < 4; ++step) {
    const at::Tensor x = torch::randn({4, 5}), y = torch::randn({4, 3});
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

TEST(EngineClip, ClippedStepsMatchAHandWrittenAdamW) { train_against_reference(0.05); }

TEST(EngineClip, UnclippedStepsMatchAHandWrittenAdamW) { train_against_reference(1e6); }

}  // namespace
