// The GPT-2 example's model: shapes, initial loss, parameter count and initialisation, gradients (tied embedding,
// checkpointed vs plain), the fused residual adds and the c_proj biases folded into them against GPT-2's textbook
// blocks. Its arithmetic, token readers and profile: gpt2_test.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <ostream>
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

// attn.c_proj and mlp.c_proj run without their bias when no dropout follows them, and the LayerNorm that adds
// their output adds the bias (ops::add_layer_norm's branch bias). Against the textbook blocks (each c_proj with its
// bias, then dropout, then +=) the loss and every gradient, the c_proj biases' included, must agree: folded (p = 0
// or eval), not folded (dropout active), and with activation checkpointing (the MLP's add inside the checkpoint).
struct FoldCase {
  double dropout;
  bool checkpointing, training;
  int biased_gemms;  // AddmmBackward nodes of the trunk outside checkpoints: c_attn, plus each c_proj not folded
};

// Without it gtest prints the struct's bytes, padding included, into the test's name.
void PrintTo(const FoldCase& c, std::ostream* os) {
  *os << "dropout " << c.dropout << (c.checkpointing ? " checkpointed" : "") << (c.training ? " train" : " eval");
}

class Gpt2BiasFold : public ::testing::TestWithParam<FoldCase> {};

TEST_P(Gpt2BiasFold, LossAndAllGradientsMatchTextbookBlocks) {
  const FoldCase fc = GetParam();
  deepspeed::checkpointing::reset();
  torch::manual_seed(7);
  gpt2::GPT model(tiny(fc.dropout, fc.checkpointing));
  model->train(fc.training);
  {
    // GPT-2 starts its biases at zero; nonzero ones make a bias that is dropped or added twice show in the loss.
    at::NoGradGuard no_grad;
    for (auto& b : model->blocks) {
      b->attn->c_proj->bias.normal_(0.0, 0.5);
      b->mlp->c_proj->bias.normal_(0.0, 0.5);
    }
  }
  const at::Tensor idx = at::randint(97, {2, 16}, at::kLong);
  const at::Tensor targets = at::randint(97, {2, 16}, at::kLong);
  auto run = [&](bool textbook) {
    model->zero_grad();
    torch::manual_seed(8);  // the same dropout masks, drawn in the same order, in both runs
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
    if (!textbook) {
      EXPECT_EQ(count_nodes(loss, "AddmmBackward"), fc.biased_gemms);
      EXPECT_EQ(count_nodes(loss, "CheckpointFunction"), fc.checkpointing && fc.training ? 2 : 0);
    }
    loss.backward();
    std::vector<at::Tensor> out{loss.detach()};
    for (const auto& p : model->named_parameters()) {
      EXPECT_TRUE(p.value().grad().defined()) << p.key();
      out.push_back(p.value().grad().defined() ? p.value().grad().clone() : at::Tensor());
    }
    return out;
  };
  const auto folded = run(false);
  const auto textbook = run(true);
  const auto names = model->named_parameters().keys();
  ASSERT_EQ(folded.size(), textbook.size());
  for (std::size_t i = 0; i < folded.size(); ++i) {
    const std::string what = i == 0 ? "loss" : names[i - 1];
    if (!folded[i].defined() || !textbook[i].defined()) continue;  // reported above
    EXPECT_TRUE(at::allclose(folded[i], textbook[i], 1e-5, 1e-7))
        << what << " max |diff| " << (folded[i] - textbook[i]).abs().max().item<double>();
  }
}

INSTANTIATE_TEST_SUITE_P(
    DropoutCheckpointing, Gpt2BiasFold,
    ::testing::Values(FoldCase{0.0, false, true, 2},   // both c_proj biases folded into the LayerNorms
                      FoldCase{0.0, true, true, 0},    // attn's folded inside each checkpoint, mlp's added there
                      FoldCase{0.1, false, true, 6},   // dropout after c_proj: nothing folded
                      FoldCase{0.1, true, true, 0},    // the same, checkpointed
                      FoldCase{0.1, false, false, 2},  // evaluation: dropout off, folded again
                      FoldCase{0.1, true, false, 2}),  // evaluation runs plainly even when checkpointing
    [](const ::testing::TestParamInfo<FoldCase>& info) {
      return std::string(info.param.dropout > 0 ? "Dropout" : "NoDropout") +
             (info.param.checkpointing ? "Checkpointed" : "Plain") + (info.param.training ? "Train" : "Eval");
    });

TEST(Gpt2Model, UnbiasedProjectionRefusedBehindActiveDropout) {
  gpt2::GPT model(tiny(/*dropout=*/0.1));
  auto& block = model->blocks[0];
  EXPECT_FALSE(block->attn->bias_foldable());
  EXPECT_FALSE(block->mlp->bias_foldable());
  EXPECT_THROW(block->mlp->forward_unbiased(at::randn({1, 4, 32})), deepspeed::UsageError);
  model->eval();
  EXPECT_TRUE(block->attn->bias_foldable());
  EXPECT_TRUE(block->mlp->bias_foldable());
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

}  // namespace
