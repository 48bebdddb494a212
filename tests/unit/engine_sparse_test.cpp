// A model with Embedding(sparse=true) trains at every ZeRO stage on one rank: its sparse gradient is added into
// the engine's dense buffers (DeepSpeed's sparse all-reduce, `sparse_gradients`, is not implemented), so the
// parameters follow plain SGD on the same model with a dense embedding, stepped by hand.
#include <gtest/gtest.h>

#include <string>

#include <ATen/ATen.h>
#include <torch/nn/functional/loss.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "deepspeed/deepspeed.h"
#include "deepspeed/engine/gathered_parameters.h"

namespace {

struct BagImpl : torch::nn::Module {
  explicit BagImpl(bool sparse)
      : table(register_module("table", torch::nn::Embedding(torch::nn::EmbeddingOptions(10, 4).sparse(sparse)))),
        head(register_module("head", torch::nn::Linear(4, 1))) {}
  at::Tensor forward(const at::Tensor& ids) { return head(table(ids).sum(1)); }
  torch::nn::Embedding table;
  torch::nn::Linear head;
};
TORCH_MODULE(Bag);

TEST(EngineSparse, SparseEmbeddingGradientsTrainAtEveryStage) {
  for (const int stage : {0, 1, 2, 3}) {
    torch::manual_seed(11);
    Bag net(/*sparse=*/true), ref(/*sparse=*/false);
    {
      torch::NoGradGuard no_grad;
      const auto ours = net->parameters(), theirs = ref->parameters();
      for (std::size_t i = 0; i < ours.size(); ++i) theirs[i].copy_(ours[i]);
    }
    deepspeed::InitializeOptions options;
    options.config = deepspeed::config::Json{
        {"train_micro_batch_size_per_gpu", 3},
        {"steps_per_print", 1000},
        {"zero_optimization", {{"stage", stage}}},
        {"zero_allow_untested_optimizer", true},  // SGD: DeepSpeed asks for this at stages 1-3
        {"optimizer", {{"type", "SGD"}, {"params", {{"lr", 0.1}}}}},
    };
    auto args = std::make_shared<deepspeed::Arguments>();
    auto [engine, opt, loader, sched] = deepspeed::initialize(args, net, net->parameters(), nullptr, options);
    const std::string label = "stage " + std::to_string(stage);
    for (int step = 0; step < 3; ++step) {
      const at::Tensor ids = at::randint(0, 10, {3, 5}, at::kLong), y = at::randn({3, 1});
      engine.backward(torch::nn::functional::mse_loss(engine(ids), y));
      engine.step();

      for (auto& p : ref->parameters()) p.mutable_grad().reset();
      torch::nn::functional::mse_loss(ref(ids), y).backward();
      {
        torch::NoGradGuard no_grad;
        for (auto& p : ref->parameters()) p.sub_(p.grad() * 0.1);
      }
    }
    deepspeed::GatheredParameters gathered(engine, net->parameters());
    const auto ours = net->parameters(), theirs = ref->parameters();
    for (std::size_t i = 0; i < ours.size(); ++i) {
      EXPECT_TRUE(at::allclose(ours[i], theirs[i], 1e-5, 1e-6))
          << label << " parameter " << i << ": max |diff| " << (ours[i] - theirs[i]).abs().max().item<double>();
    }
  }
}

}  // namespace
