// Activation checkpointing: gradients equal to the plain computation, for inputs and parameters, with
// dropout replayed, nested and in loops; no-grad passthrough; settings validation.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/nn/functional/activation.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/utils.h>

#include "deepspeed/engine/activation_checkpointing.h"
#include "deepspeed/util/error.h"

namespace ckpt = deepspeed::checkpointing;

namespace {

// Linear → GELU → dropout → Linear, residual: a transformer MLP in miniature.
struct MlpImpl : torch::nn::Module {
  explicit MlpImpl(int64_t d, double p = 0.3)
      : fc(register_module("fc", torch::nn::Linear(d, 4 * d))),
        proj(register_module("proj", torch::nn::Linear(4 * d, d))),
        drop(register_module("drop", torch::nn::Dropout(p))) {}
  at::Tensor forward(const at::Tensor& x) { return x + proj(drop(at::gelu(fc(x), "tanh"))); }
  torch::nn::Linear fc, proj;
  torch::nn::Dropout drop;
};
TORCH_MODULE(Mlp);

std::vector<Mlp> make_blocks(int n, int64_t d) {
  torch::manual_seed(7);
  std::vector<Mlp> blocks;
  for (int i = 0; i < n; ++i) blocks.emplace_back(d);
  return blocks;
}

std::vector<at::Tensor> all_params(const std::vector<Mlp>& blocks) {
  std::vector<at::Tensor> out;
  for (const auto& b : blocks) {
    for (const auto& p : b->parameters()) out.push_back(p);
  }
  return out;
}

void zero_grads(const std::vector<Mlp>& blocks) {
  for (auto& p : all_params(blocks)) p.mutable_grad() = at::Tensor();
}

// Runs `forward` from seed 123 with an RNG draw between forward and backward (so a checkpoint that failed
// to restore the generator would draw different masks), returns [input grad, parameter grads...].
template <typename F>
std::vector<at::Tensor> grads_of(const std::vector<Mlp>& blocks, const at::Tensor& x0, F forward) {
  zero_grads(blocks);
  at::Tensor x = x0.clone().requires_grad_(true);
  torch::manual_seed(123);
  at::Tensor y = forward(x);
  (void)at::rand({17});
  y.pow(2).sum().backward();
  std::vector<at::Tensor> out{x.grad().clone()};
  for (auto& p : all_params(blocks)) {
    out.push_back(p.grad().defined() ? p.grad().clone() : at::Tensor());
  }
  return out;
}

void expect_same(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    ASSERT_TRUE(a[i].defined()) << "gradient " << i;
    ASSERT_TRUE(b[i].defined()) << "gradient " << i;
    EXPECT_TRUE(at::allclose(a[i], b[i], 1e-6, 1e-7)) << "gradient " << i << " differs";
  }
}

class Checkpointing : public ::testing::Test {
 protected:
  void SetUp() override { ckpt::reset(); }
  void TearDown() override { ckpt::reset(); }
};

TEST_F(Checkpointing, MlpWithDropoutMatchesPlain) {
  auto blocks = make_blocks(1, 8);
  const at::Tensor x0 = at::randn({4, 5, 8});
  auto plain = grads_of(blocks, x0, [&](const at::Tensor& x) { return blocks[0]->forward(x); });
  auto ckpted = grads_of(blocks, x0, [&](const at::Tensor& x) {
    return ckpt::checkpoint([b = blocks[0].ptr()](const at::Tensor& h) { return b->forward(h); }, x);
  });
  expect_same(plain, ckpted);
  // The dropout really drew a mask: without replay the two runs could not agree.
  torch::manual_seed(1);
  const auto y1 = blocks[0]->forward(x0);
  const auto y2 = blocks[0]->forward(x0);
  EXPECT_FALSE(at::allclose(y1, y2));
}

TEST_F(Checkpointing, LoopOfBlocksAndNesting) {
  auto blocks = make_blocks(4, 6);
  const at::Tensor x0 = at::randn({3, 6});
  auto plain = grads_of(blocks, x0, [&](at::Tensor x) {
    for (auto& b : blocks) x = b->forward(x);
    return x;
  });
  auto looped = grads_of(blocks, x0, [&](at::Tensor x) {
    for (auto& b : blocks) x = ckpt::checkpoint([b = b.ptr()](const at::Tensor& h) { return b->forward(h); }, x);
    return x;
  });
  expect_same(plain, looped);
  // Blocks 1-2 inside an outer checkpoint, each also checkpointed: recomputation replays the inner ones too.
  auto nested = grads_of(blocks, x0, [&](at::Tensor x) {
    x = blocks[0]->forward(x);
    x = ckpt::checkpoint(
        [b1 = blocks[1].ptr(), b2 = blocks[2].ptr()](const at::Tensor& h) {
          auto inner = ckpt::checkpoint([b1](const at::Tensor& z) { return b1->forward(z); }, h);
          return ckpt::checkpoint([b2](const at::Tensor& z) { return b2->forward(z); }, inner);
        },
        x);
    return blocks[3]->forward(x);
  });
  expect_same(plain, nested);
}

TEST_F(Checkpointing, RecomputesOnceInBackward) {
  auto blocks = make_blocks(1, 4);
  int calls = 0;
  at::Tensor x = at::randn({2, 4}).requires_grad_(true);
  auto y = ckpt::checkpoint([b = blocks[0].ptr(), &calls](const at::Tensor& h) {
    ++calls;
    return b->forward(h);
  }, x);
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(y.requires_grad());
  y.sum().backward();
  EXPECT_EQ(calls, 2);
}

TEST_F(Checkpointing, NoGradIsPassthrough) {
  auto blocks = make_blocks(1, 4);
  blocks[0]->eval();
  int calls = 0;
  const at::Tensor x = at::randn({2, 4}).requires_grad_(true);
  at::Tensor y;
  {
    at::NoGradGuard no_grad;
    y = ckpt::checkpoint([b = blocks[0].ptr(), &calls](const at::Tensor& h) {
      ++calls;
      return b->forward(h);
    }, x);
  }
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(y.requires_grad());
  EXPECT_FALSE(y.grad_fn());
  at::NoGradGuard no_grad;
  EXPECT_TRUE(at::equal(y, blocks[0]->forward(x)));
}

TEST_F(Checkpointing, ParametersGetGradientsWhenNoInputRequiresGrad) {
  auto blocks = make_blocks(1, 5);
  const at::Tensor x = at::randn({3, 5});  // e.g. the first layer's input: data, no grad
  auto run = [&](bool checkpointed) {
    zero_grads(blocks);
    torch::manual_seed(5);
    at::Tensor y = checkpointed ? ckpt::checkpoint([b = blocks[0].ptr()](const at::Tensor& h) { return b->forward(h); }, x)
                                : blocks[0]->forward(x);
    y.sum().backward();
    std::vector<at::Tensor> g;
    for (auto& p : all_params(blocks)) g.push_back(p.grad().clone());
    return g;
  };
  const auto plain = run(false);
  const auto ckpted = run(true);
  expect_same(plain, ckpted);
}

TEST_F(Checkpointing, SeveralInputsAndOutputs) {
  torch::manual_seed(3);
  torch::nn::Linear lin(4, 4);
  const at::Tensor a0 = at::randn({2, 4}), b0 = at::randn({2, 4});
  auto fn = [lin = lin.ptr()](const at::Tensor& a, const at::Tensor& b) {
    auto h = lin->forward(a) * b;
    return std::make_tuple(h, h.sum(-1), a.argmax(-1));  // the third output is an integer tensor
  };
  auto run = [&](bool checkpointed, bool use_second) {
    lin->zero_grad();
    at::Tensor a = a0.clone().requires_grad_(true), b = b0.clone().requires_grad_(true);
    auto [h, s, idx] = checkpointed ? ckpt::checkpoint(fn, a, b) : fn(a, b);
    EXPECT_FALSE(idx.requires_grad());
    EXPECT_EQ(idx.scalar_type(), at::kLong);
    at::Tensor loss = h.pow(2).sum();
    if (use_second) loss = loss + 3 * s.sum();
    loss.backward();
    return std::vector<at::Tensor>{a.grad().clone(), b.grad().clone(), lin->weight.grad().clone(),
                                   lin->bias.grad().clone()};
  };
  for (bool use_second : {true, false}) {  // false: an output whose gradient never arrives
    expect_same(run(false, use_second), run(true, use_second));
  }
  // The vector form.
  at::Tensor a = a0.clone().requires_grad_(true);
  auto outs = ckpt::checkpoint([](const at::Tensor& t) { return std::vector<at::Tensor>{t * 2, t * 3}; }, a);
  ASSERT_EQ(outs.size(), 2u);
  (outs[0] + outs[1]).sum().backward();
  EXPECT_TRUE(at::allclose(a.grad(), at::full_like(a, 5.0)));
}

TEST_F(Checkpointing, SettingsAreValidatedAndApplied) {
  deepspeed::config::ActivationCheckpointingConfig c;
  c.contiguous_memory_optimization = true;
  EXPECT_THROW(ckpt::configure(c), deepspeed::UsageError);  // needs partition_activations
  c.partition_activations = true;
  EXPECT_THROW(ckpt::configure(c), deepspeed::UsageError);  // and number_checkpoints
  EXPECT_FALSE(ckpt::is_configured());
  c.number_checkpoints = 4;
  ckpt::configure(c);
  EXPECT_TRUE(ckpt::is_configured());
  EXPECT_TRUE(ckpt::settings().partition_activations);

  // cpu_checkpointing, synchronize and profile on: gradients unchanged (partitioning has no group: no-op).
  c.cpu_checkpointing = true;
  c.synchronize_checkpoint_boundary = true;
  c.profile = true;
  ckpt::configure(c);
  auto blocks = make_blocks(2, 6);
  const at::Tensor x0 = at::randn({3, 6});
  auto plain = grads_of(blocks, x0, [&](at::Tensor x) {
    for (auto& b : blocks) x = b->forward(x);
    return x;
  });
  auto ckpted = grads_of(blocks, x0, [&](at::Tensor x) {
    for (auto& b : blocks) x = ckpt::checkpoint([b = b.ptr()](const at::Tensor& h) { return b->forward(h); }, x);
    return x;
  });
  expect_same(plain, ckpted);
}

TEST_F(Checkpointing, BackwardTwiceWithRetainGraph) {
  auto blocks = make_blocks(1, 4);
  for (bool offload : {false, true}) {
    deepspeed::config::ActivationCheckpointingConfig c;
    c.cpu_checkpointing = offload;  // on: the inputs live in the stash rather than autograd's saved variables
    ckpt::configure(c);
    auto run = [&](bool checkpointed) {
      zero_grads(blocks);
      at::Tensor x = at::full({2, 4}, 0.5).requires_grad_(true);
      torch::manual_seed(9);
      auto y = checkpointed ? ckpt::checkpoint([b = blocks[0].ptr()](const at::Tensor& h) { return b->forward(h); }, x)
                            : blocks[0]->forward(x);
      y.sum().backward({}, /*retain_graph=*/true);
      y.sum().backward();
      return std::vector<at::Tensor>{x.grad().clone(), blocks[0]->fc->weight.grad().clone()};
    };
    expect_same(run(false), run(true));
  }
}

TEST_F(Checkpointing, AutogradGradIsRefused) {
  auto blocks = make_blocks(1, 4);
  at::Tensor x = at::randn({2, 4}).requires_grad_(true);
  auto y = ckpt::checkpoint([b = blocks[0].ptr()](const at::Tensor& h) { return b->forward(h); }, x);
  EXPECT_ANY_THROW(torch::autograd::grad({y.sum()}, {x}));
}

}  // namespace
