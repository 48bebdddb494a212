// Our optimizers against LibTorch's torch::optim on the same data: same parameters to ≤1e-6 relative over
// 100 steps, with lengths that are not multiples of any vector width.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include <torch/optim.h>
#include <torch/torch.h>

#include "deepspeed/optim/adagrad_lion.h"
#include "deepspeed/optim/clip.h"
#include "deepspeed/optim/optimizer.h"
#include "src/optim/adagrad_lion_kernels.h"

using namespace deepspeed;

namespace {

std::vector<at::Tensor> make_params(std::uint64_t seed) {
  torch::manual_seed(seed);
  std::vector<at::Tensor> params;
  for (std::int64_t n : {1, 7, 33, 257, 1031}) params.push_back(torch::randn({n}, torch::kFloat));
  return params;
}

// Fills .grad of both parameter sets with the same pseudo-random gradient for step `t`.
void set_grads(std::vector<at::Tensor>& a, std::vector<at::Tensor>& b, int t) {
  torch::manual_seed(1000 + t);
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto g = torch::randn_like(a[i]) * (1.0 + 0.1 * static_cast<double>(i));
    a[i].mutable_grad() = g.clone();
    b[i].mutable_grad() = g.clone();
  }
}

double max_relative_error(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double diff = (a[i] - b[i]).abs().max().item<double>();
    const double scale = b[i].abs().max().item<double>() + 1e-12;
    worst = std::max(worst, diff / scale);
  }
  return worst;
}

template <typename TorchOpt>
double run_against(optim::Optimizer& ours, std::vector<at::Tensor>& our_params, TorchOpt& reference,
                   std::vector<at::Tensor>& ref_params, int steps = 100) {
  for (int t = 0; t < steps; ++t) {
    set_grads(our_params, ref_params, t);
    ours.step();
    reference.step();
  }
  return max_relative_error(our_params, ref_params);
}

}  // namespace

TEST(OptimizerTest, FusedAdamWMatchesTorchAdamW) {
  auto ours = make_params(1);
  auto ref = make_params(1);
  for (auto& p : ref) p.set_requires_grad(true);
  config::OptimizerConfig c;
  c.type = "adamw";
  c.lr = 1e-2;
  c.weight_decay = 0.1;
  c.betas = {0.8, 0.99};
  auto opt = optim::make_optimizer(c, {optim::ParamGroup{ours, {}}});
  EXPECT_EQ(opt->name(), "FusedAdam");
  torch::optim::AdamW reference(ref, torch::optim::AdamWOptions(1e-2).betas({0.8, 0.99}).weight_decay(0.1).eps(1e-8));
  EXPECT_LE(run_against(*opt, ours, reference, ref), 1e-6);
}

TEST(OptimizerTest, AdamL2ModeMatchesTorchAdam) {
  auto ours = make_params(2);
  auto ref = make_params(2);
  for (auto& p : ref) p.set_requires_grad(true);
  config::OptimizerConfig c;
  c.type = "adam";
  c.adam_w_mode = false;
  c.lr = 3e-3;
  c.weight_decay = 0.05;
  auto opt = optim::make_optimizer(c, {optim::ParamGroup{ours, {}}});
  torch::optim::Adam reference(ref, torch::optim::AdamOptions(3e-3).weight_decay(0.05));
  EXPECT_LE(run_against(*opt, ours, reference, ref), 1e-6);
}

TEST(OptimizerTest, TorchAdamReferenceWithAmsgradMatchesTorch) {
  auto ours = make_params(3);
  auto ref = make_params(3);
  for (auto& p : ref) p.set_requires_grad(true);
  config::OptimizerConfig c;
  c.type = "adamw";
  c.torch_adam = true;
  c.amsgrad = true;
  c.lr = 1e-2;
  c.weight_decay = 0.01;
  auto opt = optim::make_optimizer(c, {optim::ParamGroup{ours, {}}});
  EXPECT_EQ(opt->name(), "AdamW");
  torch::optim::AdamW reference(ref, torch::optim::AdamWOptions(1e-2).weight_decay(0.01).amsgrad(true));
  EXPECT_LE(run_against(*opt, ours, reference, ref), 1e-6);
}

TEST(OptimizerTest, FusedAdamMatchesReferenceLoop) {
  auto fused_params = make_params(4);
  auto loop_params = make_params(4);
  config::OptimizerConfig c;
  c.type = "adamw";
  c.weight_decay = 0.1;
  auto fused = optim::make_optimizer(c, {optim::ParamGroup{fused_params, {}}});
  c.torch_adam = true;
  auto loop = optim::make_optimizer(c, {optim::ParamGroup{loop_params, {}}});
  for (int t = 0; t < 100; ++t) {
    set_grads(fused_params, loop_params, t);
    fused->step();
    loop->step();
  }
  EXPECT_LE(max_relative_error(fused_params, loop_params), 1e-6);
}

TEST(OptimizerTest, SgdMatchesTorchSgd) {
  for (bool nesterov : {false, true}) {
    auto ours = make_params(5);
    auto ref = make_params(5);
    for (auto& p : ref) p.set_requires_grad(true);
    config::OptimizerConfig c;
    c.type = "sgd";
    c.lr = 0.05;
    c.momentum = 0.9;
    c.weight_decay = 1e-3;
    c.nesterov = nesterov;
    c.dampening = nesterov ? 0.0 : 0.1;
    auto opt = optim::make_optimizer(c, {optim::ParamGroup{ours, {}}});
    torch::optim::SGD reference(
        ref, torch::optim::SGDOptions(0.05).momentum(0.9).weight_decay(1e-3).nesterov(nesterov).dampening(c.dampening));
    EXPECT_LE(run_against(*opt, ours, reference, ref), 1e-6) << "nesterov=" << nesterov;
    EXPECT_EQ(opt->momentum_repr(), "[0.9]");
  }
}

TEST(OptimizerTest, AdagradMatchesTorchAdagrad) {
  for (bool offloaded : {false, true}) {
    auto ours = make_params(11);
    auto ref = make_params(11);
    for (auto& p : ref) p.set_requires_grad(true);
    config::OptimizerConfig c;
    c.type = "adagrad";
    c.lr = 0.05;
    c.eps = 1e-10;
    c.weight_decay = 1e-2;
    auto opt = optim::make_optimizer(c, {optim::ParamGroup{ours, {}}}, offloaded);
    EXPECT_EQ(opt->name(), offloaded ? "DeepSpeedCPUAdagrad" : "Adagrad");
    torch::optim::Adagrad reference(ref, torch::optim::AdagradOptions(0.05).weight_decay(1e-2).eps(1e-10));
    EXPECT_LE(run_against(*opt, ours, reference, ref), 1e-6) << "offloaded=" << offloaded;
    EXPECT_EQ(opt->momentum_repr(), "[0.0]");  // DeepSpeed's get_mom() for an optimizer without betas
    EXPECT_FALSE(opt->has_betas());
    EXPECT_EQ(opt->state(0, 0).count("sum"), 1u);
  }
}

// Lion against its formula written out per element in double precision: c = β1·m + (1-β1)·g;
// p = p·(1 - lr·wd) - lr·sign(c); m = β2·m + (1-β2)·g. Parameter 0 never gets a gradient other than 0, so it
// only decays (sign(0) = 0).
TEST(OptimizerTest, LionMatchesItsFormula) {
  constexpr double kLr = 1e-2, kBeta1 = 0.9, kBeta2 = 0.99, kWd = 0.1;
  auto ours = make_params(12);
  std::vector<std::vector<double>> p(ours.size()), m(ours.size());
  for (std::size_t i = 0; i < ours.size(); ++i) {
    for (std::int64_t k = 0; k < ours[i].numel(); ++k) p[i].push_back(ours[i][k].item<double>());
    m[i].assign(p[i].size(), 0.0);
  }
  config::OptimizerConfig c;
  c.type = "lion";
  c.lr = kLr;
  c.betas = {kBeta1, kBeta2};
  c.weight_decay = kWd;
  auto opt = optim::make_optimizer(c, {optim::ParamGroup{ours, {}}});
  EXPECT_EQ(opt->name(), "FusedLion");
  EXPECT_EQ(opt->momentum_repr(), "[(0.9, 0.99)]");
  constexpr int kSteps = 30;
  for (int t = 0; t < kSteps; ++t) {
    torch::manual_seed(2000 + t);
    for (std::size_t i = 0; i < ours.size(); ++i) {
      const at::Tensor g = i == 0 ? torch::zeros_like(ours[i]) : torch::randn_like(ours[i]);
      ours[i].mutable_grad() = g;
      for (std::size_t k = 0; k < p[i].size(); ++k) {
        const double gk = g[static_cast<std::int64_t>(k)].item<double>();
        const double ck = kBeta1 * m[i][k] + (1 - kBeta1) * gk;
        p[i][k] = p[i][k] * (1 - kLr * kWd) - kLr * static_cast<double>((ck > 0) - (ck < 0));
        m[i][k] = kBeta2 * m[i][k] + (1 - kBeta2) * gk;
      }
    }
    opt->step();
  }
  for (std::size_t i = 0; i < ours.size(); ++i) {
    const auto expected = torch::tensor(p[i], torch::kDouble);
    EXPECT_LE((ours[i].to(torch::kDouble) - expected).abs().max().item<double>(), 1e-5) << "parameter " << i;
  }
  // The parameter without gradients: decay only, (1 - lr·wd)^t.
  EXPECT_NEAR(ours[0][0].item<double>(), p[0][0], 1e-6);
  EXPECT_NEAR(p[0][0], make_params(12)[0][0].item<double>() * std::pow(1 - kLr * kWd, kSteps), 1e-9);
}

// The one-pass host kernels of Adagrad and Lion against their LibTorch-op references, with fp32 and bf16
// gradients (offloaded masters get the reduced gradient in the communication dtype) and weight decay: the
// same values to fp32 rounding over 20 steps, at lengths that are not multiples of any vector width.
TEST(OptimizerTest, AdagradAndLionHostKernelsMatchTheirReferences) {
  optim::Hyper h;
  h.lr = 1e-2;
  h.beta1 = 0.9;
  h.beta2 = 0.99;
  h.eps = 1e-10;
  h.weight_decay = 0.05;
  for (const auto grad_type : {torch::kFloat, torch::kBFloat16}) {
    for (const bool lion : {false, true}) {
      auto fast = make_params(13), slow = make_params(13);
      std::vector<at::Tensor> fast_state, slow_state;
      for (const auto& p : fast) fast_state.push_back(torch::zeros_like(p));
      for (const auto& p : slow) slow_state.push_back(torch::zeros_like(p));
      for (int t = 0; t < 20; ++t) {
        torch::manual_seed(3000 + t);
        for (std::size_t i = 0; i < fast.size(); ++i) {
          const at::Tensor g = torch::randn_like(fast[i]).to(grad_type);
          ASSERT_TRUE(optim::detail::host_kernel_applies(fast[i], g, fast_state[i]));
          if (lion) {
            optim::detail::lion_host(fast[i], g, fast_state[i], h);
            optim::detail::lion_reference(slow[i], g, slow_state[i], h);
          } else {
            optim::detail::adagrad_host(fast[i], g, fast_state[i], h);
            optim::detail::adagrad_reference(slow[i], g, slow_state[i], h);
          }
        }
      }
      const std::string what = std::string(lion ? "Lion" : "Adagrad") + (grad_type == torch::kFloat ? ", fp32" : ", bf16");
      EXPECT_LE(max_relative_error(fast, slow), 1e-6) << what;
      EXPECT_LE(max_relative_error(fast_state, slow_state), 1e-6) << what;
    }
  }
  // Not the host kernel's: device tensors, another dtype, a strided view.
  const at::Tensor p = torch::zeros({8}), g = torch::zeros({8});
  EXPECT_FALSE(optim::detail::host_kernel_applies(p.to(torch::kDouble), g, p));
  EXPECT_FALSE(optim::detail::host_kernel_applies(p, torch::zeros({16}).slice(0, 0, 16, 2), p));
  EXPECT_FALSE(optim::detail::host_kernel_applies(p, g.to(torch::kHalf), p));
}

// Adagrad and Lion on CUDA tensors (LibTorch ops) against the same optimizers on CPU tensors (the one-pass
// host kernels): one step path per device, the same numbers. Runs only where CUDA is available (the device
// scripts run it: scripts/device/offload_profile.sh with CHECK=1).
TEST(OptimizerTest, AdagradAndLionOnCudaMatchTheHostKernels) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  for (const std::string type : {"adagrad", "lion"}) {
    config::OptimizerConfig c;
    c.type = type;
    c.lr = 1e-2;
    c.eps = 1e-10;
    c.betas = {0.9, 0.99};
    c.weight_decay = 0.05;
    auto cpu = make_params(14);
    std::vector<at::Tensor> gpu;
    for (const auto& p : cpu) gpu.push_back(p.to(at::kCUDA));
    auto cpu_opt = optim::make_optimizer(c, {optim::ParamGroup{cpu, {}}});
    auto gpu_opt = optim::make_optimizer(c, {optim::ParamGroup{gpu, {}}});
    for (int t = 0; t < 50; ++t) {
      torch::manual_seed(4000 + t);
      for (std::size_t i = 0; i < cpu.size(); ++i) {
        const at::Tensor g = torch::randn_like(cpu[i]);
        cpu[i].mutable_grad() = g;
        gpu[i].mutable_grad() = g.to(at::kCUDA);
      }
      cpu_opt->step();
      gpu_opt->step();
    }
    std::vector<at::Tensor> back;
    for (const auto& p : gpu) back.push_back(p.cpu());
    // Deterministic inputs: a last-bit difference in a Lion momentum next to zero would flip its sign() and
    // move that element by 2·lr, far outside this bound, every time (not flakily).
    EXPECT_LE(max_relative_error(back, cpu), 1e-5) << type;
    EXPECT_TRUE(gpu_opt->state(0, 4).begin()->second.is_cuda()) << type;
  }
}

TEST(OptimizerTest, ScheduleTargetDrivesLrAndMomentum) {
  auto params = make_params(6);
  config::OptimizerConfig c;
  c.type = "adam";
  auto opt = optim::make_optimizer(c, {optim::ParamGroup{params, {}}});
  opt->set_lr(0, 0.5);
  opt->set_momentum(0, 0.85);
  EXPECT_EQ(opt->lr(0), 0.5);
  EXPECT_EQ(opt->param_groups()[0].hyper.beta1, 0.85);
  EXPECT_EQ(opt->momentum_repr(), "[(0.85, 0.999)]");
}

TEST(ClipTest, ClipsToMaxNormLikeDeepSpeed) {
  std::vector<at::Tensor> grads = {torch::full({3}, 2.0), torch::full({1}, 2.0)};  // norm = 4
  const double norm = optim::l2_norm(grads);
  EXPECT_NEAR(norm, 4.0, 1e-12);
  const double coef = optim::clip_by_norm(grads, 1.0, norm);
  EXPECT_NEAR(coef, 1.0 / (4.0 + 1e-6), 1e-15);
  EXPECT_NEAR(optim::l2_norm(grads), 4.0 / (4.0 + 1e-6), 1e-6);  // fp32 gradients
  EXPECT_EQ(optim::clip_by_norm(grads, 10.0, 1.0), 1.0);  // never scales up
}

// super_offload sums the host gradients on fewer threads than the rest: the sum must not change with them.
TEST(ClipTest, HostSquaredNormDoesNotDependOnTheThreadCount) {
  torch::manual_seed(5);
  const auto grads = torch::randn({3 * 65536 + 777}).to(at::kBFloat16);
  const double all = optim::squared_l2_norm({grads});
  for (int threads : {1, 2, 3, 7}) EXPECT_EQ(optim::squared_l2_norm({grads}, threads), all) << threads;
  // fp32 within each run of 1024: ~1e-7 relative against an fp64 sum.
  EXPECT_NEAR(all, grads.to(at::kDouble).square().sum().item<double>(), 1e-6 * all);
  EXPECT_EQ(optim::squared_l2_norm({torch::zeros({0})}, 3), 0.0);
}

// The engine's factor computed beside the gradients must be the host's arithmetic to the bit: an optimizer
// handed either gets the same update. On the CPU, and on a GPU where there is one (a scale that is not a power
// of two catches a division turned into a multiplication by the reciprocal).
TEST(ClipTest, GradientFactorIsTheHostArithmetic) {
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  std::vector<c10::Device> devices{c10::Device(c10::kCPU)};
  if (at::hasCUDA()) devices.emplace_back(c10::kCUDA, 0);
  for (const auto& device : devices) {
    for (double squared : {0.0, 1e-14, 0.0025, 0.25, 1.0, 16.0, 3.3e7, inf, nan}) {
      for (double max_norm : {0.0, 0.05, 1.0, 1e9}) {
        for (double scale : {1.0, 1024.0, 1000.0, 3.0}) {
          const double norm = std::sqrt(squared) / scale;
          double expected = 1.0 / scale;
          if (max_norm > 0.0) expected *= std::min(1.0, max_norm / (norm + 1e-6));
          const auto options = at::TensorOptions().dtype(at::kDouble).device(device);
          const at::Tensor squared_there = at::scalar_tensor(squared, options);
          const at::Tensor factor = optim::gradient_factor(squared_there, max_norm, scale);
          EXPECT_EQ(factor.scalar_type(), at::kDouble);
          EXPECT_EQ(factor.dim(), 0);
          EXPECT_EQ(factor.device(), device);
          const double got = factor.item<double>();
          EXPECT_EQ(std::memcmp(&got, &expected, sizeof got), 0)
              << device << " squared " << squared << " max_norm " << max_norm << " scale " << scale << ": " << got
              << " vs " << expected;
        }
      }
    }
  }
}

TEST(ClipTest, SquaredNormTensorIsTheHostSum) {
  torch::manual_seed(6);
  const std::vector<at::Tensor> grads = {torch::randn({70000}), torch::randn({33}).to(at::kBFloat16), torch::zeros({0})};
  const at::Tensor squared = optim::squared_l2_norm_tensor(grads);
  EXPECT_EQ(squared.scalar_type(), at::kDouble);
  EXPECT_EQ(squared.item<double>(), optim::squared_l2_norm(grads));
  EXPECT_EQ(optim::squared_l2_norm_tensor({}).item<double>(), 0.0);
  EXPECT_THROW(optim::squared_l2_norm_tensor({torch::ones({2}), at::empty({2}, at::kMeta)}), std::invalid_argument);
}

// FusedAdam given the factor as a tensor (as the engine does after clipping on the device) updates exactly as
// with the number; on the CPU it reads the tensor once.
TEST(OptimizerTest, FusedAdamTakesTheFactorAsATensor) {
  for (const char* type : {"adamw", "adam"}) {
    auto by_number = make_params(21), by_tensor = make_params(21);
    config::OptimizerConfig c;
    c.type = type;
    c.lr = 0.01;
    c.weight_decay = 0.1;
    auto a = optim::make_optimizer(c, {optim::ParamGroup{by_number, {}}});
    auto b = optim::make_optimizer(c, {optim::ParamGroup{by_tensor, {}}});
    for (int t = 0; t < 3; ++t) {
      set_grads(by_number, by_tensor, t);
      const double factor = 0.37 + 0.1 * t;
      ASSERT_TRUE(a->take_gradient_scale(factor));
      ASSERT_TRUE(b->take_device_gradient_scale(at::scalar_tensor(factor, at::kDouble)));
      a->step();
      b->step();
    }
    for (std::size_t i = 0; i < by_number.size(); ++i) EXPECT_TRUE(at::equal(by_number[i], by_tensor[i])) << type << " " << i;
    // A factor applies to one step only.
    set_grads(by_number, by_tensor, 9);
    a->step();
    b->step();
    for (std::size_t i = 0; i < by_number.size(); ++i) EXPECT_TRUE(at::equal(by_number[i], by_tensor[i])) << type << " " << i;
  }
  // Optimizers without the device path decline, and the engine reads the factor for them.
  auto params = make_params(22);
  config::OptimizerConfig sgd;
  sgd.type = "sgd";
  EXPECT_FALSE(optim::make_optimizer(sgd, {optim::ParamGroup{params, {}}})->take_device_gradient_scale(at::scalar_tensor(0.5)));
}

TEST(OptimizerTest, GroupOverridesSurviveTheConfig) {
  auto decay = make_params(7);
  auto no_decay = make_params(8);
  config::OptimizerConfig c;
  c.type = "adamw";
  c.lr = 0.01;
  c.weight_decay = 0.1;
  optim::ParamGroup plain{decay, {}, {}};
  optim::ParamGroup biases{no_decay, {}, {}};
  biases.overrides.weight_decay = 0.0;
  biases.overrides.lr = 0.5;
  auto opt = optim::make_optimizer(c, {plain, biases});
  EXPECT_EQ(opt->param_groups()[0].hyper.weight_decay, 0.1);
  EXPECT_EQ(opt->param_groups()[1].hyper.weight_decay, 0.0);
  EXPECT_EQ(opt->param_groups()[1].hyper.lr, 0.5);
  EXPECT_EQ(opt->param_groups()[1].hyper.beta1, 0.9);
}

TEST(OptimizerTest, StateDictRoundTripContinuesExactly) {
  for (const char* type : {"adamw", "sgd"}) {
    auto straight = make_params(9);
    auto resumed = make_params(9);
    config::OptimizerConfig c;
    c.type = type;
    c.lr = 0.01;
    c.momentum = 0.9;
    c.weight_decay = 0.01;
    auto a = optim::make_optimizer(c, {optim::ParamGroup{straight, {}, {}}});
    auto b = optim::make_optimizer(c, {optim::ParamGroup{resumed, {}, {}}});
    for (int t = 0; t < 5; ++t) {
      set_grads(straight, resumed, t);
      a->step();
      b->step();
    }
    // Serialize through LibTorch's pickler (what checkpoints write), into a fresh optimizer.
    const auto bytes = torch::pickle_save(b->state_dict());
    b->param_groups()[0].hyper.lr = 123.0;  // must be restored by the load
    auto fresh = optim::make_optimizer(c, {optim::ParamGroup{resumed, {}, {}}});
    fresh->load_state_dict(torch::pickle_load(bytes));
    EXPECT_EQ(fresh->param_groups()[0].hyper.lr, 0.01);
    for (int t = 5; t < 10; ++t) {
      set_grads(straight, resumed, t);
      a->step();
      fresh->step();
    }
    EXPECT_EQ(max_relative_error(resumed, straight), 0.0) << type;
  }
}
