// The GPT-2 example's model: shapes, initial loss, parameter count and initialisation, gradients (tied embedding,
// checkpointed vs plain), the fused residual adds and the c_proj biases folded into them against GPT-2's textbook
// blocks. Its arithmetic, token readers and profile: gpt2_test.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/function.h>
#include <torch/utils.h>

#include "deepspeed/engine/activation_checkpointing.h"
#include "deepspeed/util/error.h"
#include "examples/gpt2/gpt_config.h"
#include "examples/gpt2/model.h"

namespace gpt2 = deepspeed::examples::gpt2;

namespace {

gpt2::GPTConfig tiny(double dropout = 0.0, bool checkpointing = false) {
  return gpt2::GPTConfig{.vocab_size = 97, .block_size = 16, .n_layer = 2, .n_head = 2, .n_embd = 32,
                         .dropout = dropout, .activation_checkpointing = checkpointing};
}

// Nodes of the autograd graph behind `t` whose name contains `what`.
int count_nodes(const at::Tensor& t, const std::string& what) {
  std::vector<torch::autograd::Node*> stack{t.grad_fn().get()};
  std::set<torch::autograd::Node*> seen;
  int n = 0;
  while (!stack.empty()) {
    auto* node = stack.back();
    stack.pop_back();
    if (node == nullptr || !seen.insert(node).second) continue;
    n += node->name().find(what) != std::string::npos;
    for (const auto& edge : node->next_edges()) stack.push_back(edge.function.get());
  }
  return n;
}

std::int64_t count(gpt2::GPT& model) {
  std::int64_t n = 0;
  for (const auto& p : model->parameters()) n += p.numel();
  return n;
}

TEST(Gpt2Model, ShapesAndInitialLoss) {
  torch::manual_seed(0);
  gpt2::GPT model(tiny());
  const at::Tensor idx = at::randint(97, {3, 16}, at::kLong);
  const at::Tensor logits = model(idx);
  EXPECT_EQ(logits.sizes(), (std::vector<std::int64_t>{3, 16, 97}));
  // N(0, 0.02) weights make every logit small: the prediction is nearly uniform.
  const double loss = gpt2::lm_loss(logits, at::randint(97, {3, 16}, at::kLong)).item<double>();
  EXPECT_NEAR(loss, std::log(97.0), 0.05);
  EXPECT_EQ(model(idx.narrow(1, 0, 5)).size(1), 5);  // shorter sequences use the first positions
  EXPECT_THROW(model(at::zeros({1, 17}, at::kLong)), deepspeed::UsageError);
  EXPECT_THROW(gpt2::GPT(gpt2::GPTConfig{.n_head = 5}), deepspeed::UsageError);  // 768 % 5 != 0
}

TEST(Gpt2Model, ParameterCountAndResidualInit) {
  torch::manual_seed(0);
  gpt2::GPT small(tiny());
  EXPECT_EQ(count(small), gpt2::num_parameters(tiny()));
  gpt2::GPT model(*gpt2::preset("124M"));
  EXPECT_EQ(count(model), 124475904);  // nanoGPT's figure for GPT-2 small with the padded vocabulary
  // Residual projections start at 0.02/sqrt(2·12); the others at 0.02.
  EXPECT_NEAR(model->blocks[0]->attn->c_proj->weight.std().item<double>(), 0.02 / std::sqrt(24.0), 2e-4);
  EXPECT_NEAR(model->blocks[0]->mlp->c_proj->weight.std().item<double>(), 0.02 / std::sqrt(24.0), 2e-4);
  EXPECT_NEAR(model->blocks[0]->mlp->c_fc->weight.std().item<double>(), 0.02, 2e-4);
  EXPECT_NEAR(model->wte->weight.std().item<double>(), 0.02, 2e-4);
  EXPECT_EQ(model->blocks[0]->attn->c_attn->bias.abs().sum().item<double>(), 0.0);
}

TEST(Gpt2Model, GradientsFiniteAndTiedEmbeddingGetsBothUses) {
  torch::manual_seed(1);
  gpt2::GPT model(tiny());
  // One sequence using only tokens 0..19: rows 20..96 of wte are touched by the LM head alone.
  const at::Tensor idx = at::randint(20, {1, 16}, at::kLong);
  const at::Tensor targets = at::randint(97, {1, 16}, at::kLong);
  gpt2::lm_loss(model(idx), targets).backward();
  for (const auto& p : model->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_TRUE(at::isfinite(p.value().grad()).all().item<bool>()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
  }
  const at::Tensor total = model->wte->weight.grad().clone();

  // The two uses separately: the head through a detached copy of the weight, the lookup through the
  // position embedding's gradient (x0 = wte[idx] + wpe[pos], so dL/dx0 = dL/dwpe for a batch of one).
  model->zero_grad();
  at::Tensor head_weight = model->wte->weight.detach().clone().requires_grad_(true);
  at::Tensor x = model->wte(idx) + model->wpe(at::arange(16, at::kLong));
  gpt2::lm_loss(at::linear(model->trunk(x), head_weight), targets).backward();
  const at::Tensor lookup = at::zeros_like(total).index_add_(0, idx[0], model->wpe->weight.grad().narrow(0, 0, 16));
  EXPECT_TRUE(at::allclose(total, head_weight.grad() + lookup, 1e-5, 1e-7));
  EXPECT_GT(lookup.abs().sum().item<double>(), 0.0);
  EXPECT_GT(head_weight.grad().narrow(0, 20, 77).abs().sum().item<double>(), 0.0);
  EXPECT_TRUE(at::allclose(total.narrow(0, 20, 77), head_weight.grad().narrow(0, 20, 77)));
}

// The blocks carry the MLP output to the next LayerNorm to be added there (fused); the result must be GPT-2's
// textbook block, x += attn(ln_1(x)); x += mlp(ln_2(x)), then ln_f. Forward and gradients, CPU fp32.
TEST(Gpt2Model, FusedResidualsMatchTextbookBlocks) {
  torch::manual_seed(5);
  gpt2::GPT model(tiny());
  const at::Tensor idx = at::randint(97, {2, 16}, at::kLong);
  const at::Tensor targets = at::randint(97, {2, 16}, at::kLong);
  auto run = [&](bool textbook) {
    model->zero_grad();
    at::Tensor x = model->wte(idx) + model->wpe(at::arange(16, at::kLong));
    if (textbook) {
      for (auto& b : model->blocks) {
        x = x + b->attn(b->ln_1(x));
        x = x + b->mlp(b->ln_2(x));
      }
      x = model->ln_f(x);
    } else {
      x = model->trunk(x);
    }
    const at::Tensor loss = gpt2::lm_loss(at::linear(x, model->wte->weight), targets);
    loss.backward();
    std::vector<at::Tensor> out{x.detach()};
    for (const auto& p : model->parameters()) out.push_back(p.grad().clone());
    return out;
  };
  const auto fused = run(false);
  const auto textbook = run(true);
  ASSERT_EQ(fused.size(), textbook.size());
  for (std::size_t i = 0; i < fused.size(); ++i) {
    EXPECT_TRUE(at::allclose(fused[i], textbook[i], 1e-5, 1e-7)) << "tensor " << i;
  }
  EXPECT_TRUE(at::equal(model(idx), at::linear(fused[0], model->wte->weight)));
}

TEST(Gpt2Model, CheckpointedMatchesPlain) {
  deepspeed::checkpointing::reset();
  const at::Tensor idx = at::randint(97, {2, 16}, at::kLong);
  const at::Tensor targets = at::randint(97, {2, 16}, at::kLong);
  auto grads = [&](bool checkpointing) {
    torch::manual_seed(3);
    gpt2::GPT model(tiny(/*dropout=*/0.1, checkpointing));
    torch::manual_seed(4);  // the dropout masks
    const at::Tensor loss = gpt2::lm_loss(model(idx), targets);
    EXPECT_EQ(count_nodes(loss, "CheckpointFunction"), checkpointing ? 2 : 0);  // one per block
    (void)at::rand({5});  // moves the generator on before backward, as the next layer's dropout would
    loss.backward();
    std::vector<at::Tensor> out{loss.detach()};
    for (const auto& p : model->parameters()) out.push_back(p.grad().clone());
    return out;
  };
  const auto plain = grads(false);
  const auto ckpt = grads(true);
  ASSERT_EQ(plain.size(), ckpt.size());
  for (std::size_t i = 0; i < plain.size(); ++i) {
    EXPECT_TRUE(at::allclose(plain[i], ckpt[i], 1e-5, 1e-7)) << "tensor " << i;
  }
}

// --linear ops: the biased projections through ops::linear, which is at::linear on the CPU (its kernel path is
// linear_gpu_test's): the same loss and gradients, so the switch reaches every biased projection and nothing else.
TEST(Gpt2Model, OpsLinearMatchesAtLinear) {
  const at::Tensor idx = at::randint(97, {2, 16}, at::kLong);
  const at::Tensor targets = at::randint(97, {2, 16}, at::kLong);
  auto grads = [&](bool ops_linear) {
    torch::manual_seed(6);
    auto config = tiny();
    config.ops_linear = ops_linear;
    gpt2::GPT model(config);
    const at::Tensor loss = gpt2::lm_loss(model(idx), targets);
    loss.backward();
    std::vector<at::Tensor> out{loss.detach()};
    for (const auto& p : model->parameters()) out.push_back(p.grad().clone());
    return out;
  };
  const auto aten = grads(false), ops = grads(true);
  ASSERT_EQ(aten.size(), ops.size());
  for (std::size_t i = 0; i < aten.size(); ++i) EXPECT_TRUE(at::equal(aten[i], ops[i])) << "tensor " << i;
}

}  // namespace
