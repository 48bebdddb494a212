// DeepSpeedCPUAdam: against torch::optim (Adam, AdamW) over 100 steps, every SIMD path against the scalar
// reference bit for bit, and the fused 16-bit up-cast/write-back against doing the casts with LibTorch.
// Lengths leave tails for every vector width (8, 16) and the 64Ki-element OpenMP block.
#include <gtest/gtest.h>

#include <torch/optim.h>
#include <torch/torch.h>

#include "deepspeed/optim/cpu_adam.h"

using namespace deepspeed;
using optim::CpuIsa;

namespace {

const std::vector<std::int64_t> kLengths = {1, 7, 15, 17, 33, 1031, 100003};

at::Tensor grads_of_one() { return torch::zeros({1}); }

std::vector<CpuIsa> supported_isas() {
  std::vector<CpuIsa> out;
  for (CpuIsa isa : {CpuIsa::kScalar, CpuIsa::kAvx2, CpuIsa::kAvx512}) {
    if (optim::cpu_isa_supported(isa)) out.push_back(isa);
  }
  return out;
}

std::vector<at::Tensor> make_params(std::uint64_t seed) {
  torch::manual_seed(seed);
  std::vector<at::Tensor> params;
  for (std::int64_t n : kLengths) params.push_back(torch::randn({n}));
  return params;
}

double max_relative_error(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double diff = (a[i] - b[i]).abs().max().item<double>();
    worst = std::max(worst, diff / (b[i].abs().max().item<double>() + 1e-12));
  }
  return worst;
}

// Bit patterns, so -0/+0 and NaN payloads count as differences.
bool same_bits(const at::Tensor& a, const at::Tensor& b) {
  const auto as_int = [](const at::Tensor& t) {
    return t.element_size() == 4 ? t.view(at::kInt) : t.view(at::kShort);
  };
  return a.scalar_type() == b.scalar_type() && at::equal(as_int(a), as_int(b));
}

using MakeTorchOpt = std::function<std::unique_ptr<torch::optim::Optimizer>(std::vector<at::Tensor>&)>;

double run_against_torch(CpuIsa isa, const optim::Hyper& h, const MakeTorchOpt& make) {
  auto ours = make_params(11);
  auto ref = make_params(11);
  for (auto& p : ref) p.set_requires_grad(true);
  optim::CpuAdam opt({optim::ParamGroup{ours, h}}, isa);
  auto reference = make(ref);
  for (int t = 0; t < 100; ++t) {
    torch::manual_seed(1000 + t);
    for (std::size_t i = 0; i < ours.size(); ++i) {
      auto g = torch::randn_like(ours[i]) * (1.0 + 0.1 * static_cast<double>(i));
      ours[i].mutable_grad() = g.clone();
      ref[i].mutable_grad() = g.clone();
    }
    opt.step();
    reference->step();
  }
  return max_relative_error(ours, ref);
}

optim::Hyper hyper(double lr, double wd, bool adam_w_mode) {
  optim::Hyper h;
  h.lr = lr;
  h.beta1 = 0.8;
  h.beta2 = 0.99;
  h.weight_decay = wd;
  h.adam_w_mode = adam_w_mode;
  return h;
}

// Fresh fp32 state for one shard, identical across calls with the same seed.
struct Shard {
  at::Tensor p, m, v;
  explicit Shard(std::int64_t n, std::uint64_t seed) {
    torch::manual_seed(seed);
    p = torch::randn({n});
    m = torch::randn({n}) * 0.1;
    v = torch::rand({n}) * 0.01;
  }
  Shard clone() const {
    Shard s(*this);
    s.p = p.clone();
    s.m = m.clone();
    s.v = v.clone();
    return s;
  }
};

}  // namespace

TEST(CpuAdamTest, AdamWModeMatchesTorchAdamW) {
  const auto h = hyper(1e-2, 0.1, true);
  for (CpuIsa isa : supported_isas()) {
    const double err = run_against_torch(isa, h, [](std::vector<at::Tensor>& ref) {
      return std::make_unique<torch::optim::AdamW>(
          ref, torch::optim::AdamWOptions(1e-2).betas({0.8, 0.99}).weight_decay(0.1));
    });
    EXPECT_LE(err, 1e-6) << optim::cpu_isa_name(isa);
  }
}

TEST(CpuAdamTest, L2ModeMatchesTorchAdam) {
  const auto h = hyper(3e-3, 0.05, false);
  for (CpuIsa isa : supported_isas()) {
    const double err = run_against_torch(isa, h, [](std::vector<at::Tensor>& ref) {
      return std::make_unique<torch::optim::Adam>(
          ref, torch::optim::AdamOptions(3e-3).betas({0.8, 0.99}).weight_decay(0.05));
    });
    EXPECT_LE(err, 1e-6) << optim::cpu_isa_name(isa);
  }
}

TEST(CpuAdamTest, NoBiasCorrectionMatchesReferenceLoop) {
  auto ours = make_params(12);
  auto ref = make_params(12);
  config::OptimizerConfig c;
  c.type = "adamw";
  c.torch_adam = true;
  c.bias_correction = false;
  c.weight_decay = 0.02;
  auto loop = optim::make_optimizer(c, {optim::ParamGroup{ref, {}}});
  optim::CpuAdam opt({optim::ParamGroup{ours, optim::Hyper::from_config(c)}});
  for (int t = 0; t < 100; ++t) {
    torch::manual_seed(2000 + t);
    for (std::size_t i = 0; i < ours.size(); ++i) {
      auto g = torch::randn_like(ours[i]);
      ours[i].mutable_grad() = g.clone();
      ref[i].mutable_grad() = g.clone();
    }
    opt.step();
    loop->step();
  }
  EXPECT_LE(max_relative_error(ours, ref), 1e-6);
}

// Every (grad dtype, copy dtype, decay mode, length), serial and across OpenMP threads, at unaligned
// addresses: each SIMD path must reproduce the scalar reference exactly.
TEST(CpuAdamTest, SimdMatchesScalarBitwise) {
  const std::vector<at::ScalarType> grad_types = {at::kFloat, at::kBFloat16, at::kHalf};
  const std::vector<std::optional<at::ScalarType>> copy_types = {std::nullopt, at::kBFloat16, at::kHalf};
  int compared = 0;
  for (CpuIsa isa : supported_isas()) {
    if (isa == CpuIsa::kScalar) continue;
    for (bool adam_w : {true, false}) {
      const auto h = hyper(1e-3, 0.01, adam_w);
      for (auto gt : grad_types) {
        for (auto ct : copy_types) {
          for (std::int64_t n : kLengths) {
            for (std::int64_t shift : {0, 1}) {
              Shard ref(n + 1, 7), simd = ref.clone();
              // Shifted by one element no SIMD access is aligned (and the copy is never streamed); unshifted
              // the copy takes non-temporal stores.
              const auto view = [n, shift](const at::Tensor& t) { return t.narrow(0, shift, n); };
              const auto grad = torch::randn({n + 1}).to(gt);
              const auto copy_ref = ct ? torch::zeros({n + 1}, *ct) : at::Tensor();
              const auto copy_simd = ct ? torch::zeros({n + 1}, *ct) : at::Tensor();
              for (std::int64_t step = 1; step <= 3; ++step) {
                optim::cpu_adam_step(h, step, view(ref.p), view(grad), view(ref.m), view(ref.v),
                                     ct ? view(copy_ref) : at::Tensor(), {CpuIsa::kScalar, false});
                optim::cpu_adam_step(h, step, view(simd.p), view(grad), view(simd.m), view(simd.v),
                                     ct ? view(copy_simd) : at::Tensor(),
                                     {isa, /*parallel=*/step % 2 == 1, /*threads=*/0, /*stream_copy=*/step != 2});
              }
              const std::string what = std::string(optim::cpu_isa_name(isa)) + " grad " + c10::toString(gt) +
                                       " copy " + (ct ? c10::toString(*ct) : "none") + " n=" + std::to_string(n) +
                                       " shift " + std::to_string(shift) + (adam_w ? " adamw" : " l2");
              EXPECT_TRUE(same_bits(simd.p, ref.p)) << what;
              EXPECT_TRUE(same_bits(simd.m, ref.m)) << what;
              EXPECT_TRUE(same_bits(simd.v, ref.v)) << what;
              if (ct) EXPECT_TRUE(same_bits(copy_simd, copy_ref)) << what;
              ++compared;
            }
          }
        }
      }
    }
  }
  if (compared == 0) GTEST_SKIP() << "no SIMD path on this CPU";
}

// The fused pass (16-bit grads in, 16-bit params out) equals up-casting the grads with LibTorch, stepping in
// fp32, and down-casting the parameters with LibTorch, bit for bit.
TEST(CpuAdamTest, FusedCastsMatchLibTorchCasts) {
  const auto h = hyper(1e-2, 0.1, true);
  for (CpuIsa isa : supported_isas()) {
    for (auto half : {at::kBFloat16, at::kHalf}) {
      for (std::int64_t n : kLengths) {
        Shard fused(n, 3), separate = fused.clone();
        auto copy = torch::empty({n}, half);
        for (std::int64_t step = 1; step <= 5; ++step) {
          torch::manual_seed(50 + step);
          const auto grad16 = torch::randn({n}).to(half);
          optim::cpu_adam_step(h, step, fused.p, grad16, fused.m, fused.v, copy, {isa});
          optim::cpu_adam_step(h, step, separate.p, grad16.to(at::kFloat), separate.m, separate.v, {}, {isa});
          const std::string what = std::string(optim::cpu_isa_name(isa)) + " " + c10::toString(half) +
                                   " n=" + std::to_string(n) + " step " + std::to_string(step);
          ASSERT_TRUE(same_bits(fused.p, separate.p)) << what;
          ASSERT_TRUE(same_bits(fused.m, separate.m)) << what;
          ASSERT_TRUE(same_bits(fused.v, separate.v)) << what;
          ASSERT_TRUE(same_bits(copy, separate.p.to(half))) << what;
        }
      }
    }
  }
}

// Write-back rounding on the hard cases: ties both ways, subnormals of both formats, overflow to inf,
// infinities, signed zeros. With lr = 0 and zero gradients the parameters stay put, so the copy is exactly
// the conversion of the inputs.
TEST(CpuAdamTest, WriteBackRoundsLikeAtenConversion) {
  std::vector<std::uint32_t> bits = {
      0x3F808000u, 0x3F818000u, 0xBF808000u, 0xBF818000u,  // bf16 ties to even, down and up
      0x3F807FFFu, 0x3F808001u,                            // just below / above a bf16 tie
      0x00000001u, 0x00008000u, 0x00018000u, 0x807FFFFFu,  // fp32 subnormals (bf16 ties among them)
      0x7F7FFFFFu, 0xFF7FFFFFu, 0x7F800000u, 0xFF800000u,  // max finite (rounds to inf in bf16), infinities
      0x00000000u, 0x80000000u,                            // signed zeros
      0x33800000u, 0x33C00000u, 0x34000000u, 0x387FC000u,  // fp16 subnormal range and its ties
      0x477FF000u, 0x477FE000u, 0x47800000u,               // fp16 max / overflow boundary
      0x3F801000u, 0x3F803000u};                           // fp16 ties (bit 12 set)
  torch::manual_seed(9);
  auto random = torch::randn({1000}) * torch::pow(10.0, torch::randint(-12, 8, {1000}).to(at::kFloat));
  auto special = torch::from_blob(bits.data(), {static_cast<std::int64_t>(bits.size())}, at::kInt).clone();
  const auto values = at::cat({special.view(at::kFloat), random});
  const std::int64_t n = values.numel();
  optim::Hyper h = hyper(0.0, 0.0, true);
  for (CpuIsa isa : supported_isas()) {
    for (auto half : {at::kBFloat16, at::kHalf}) {
      auto p = values.clone();
      auto m = torch::zeros({n}), v = torch::zeros({n}), copy = torch::empty({n}, half);
      optim::cpu_adam_step(h, 1, p, torch::zeros({n}, half), m, v, copy, {isa});
      ASSERT_TRUE(same_bits(p, values)) << optim::cpu_isa_name(isa);
      EXPECT_TRUE(same_bits(copy, values.to(half))) << optim::cpu_isa_name(isa) << " " << c10::toString(half);
    }
  }
}

TEST(CpuAdamTest, OptimizerInterfaceWithHalfGradsAndRegisteredCopy) {
  const auto h = hyper(1e-2, 0.1, true);
  auto params = make_params(21);
  std::vector<at::Tensor> expected_p, expected_m, expected_v;
  for (const auto& p : params) {
    expected_p.push_back(p.clone());
    expected_m.push_back(torch::zeros_like(p));
    expected_v.push_back(torch::zeros_like(p));
  }
  optim::CpuAdam opt({optim::ParamGroup{params, h}});
  EXPECT_EQ(opt.name(), "DeepSpeedCPUAdam");
  EXPECT_EQ(opt.isa(), optim::best_cpu_isa());
  std::vector<at::Tensor> copies;
  for (std::size_t i = 0; i < params.size(); ++i) {
    copies.push_back(torch::empty_like(params[i], at::kBFloat16));
    opt.set_param_copy(0, i, copies.back());
  }
  for (std::int64_t step = 1; step <= 10; ++step) {
    for (std::size_t i = 0; i < params.size(); ++i) {
      // ZeRO-Offload's layout: fp32 master parameter, gradient buffer in the model's 16-bit dtype.
      auto g = torch::randn_like(params[i]).to(at::kBFloat16);
      params[i].mutable_grad() = g;
      optim::cpu_adam_step(h, step, expected_p[i], g, expected_m[i], expected_v[i]);
    }
    opt.step();
  }
  for (std::size_t i = 0; i < params.size(); ++i) {
    EXPECT_TRUE(same_bits(params[i], expected_p[i]));
    EXPECT_TRUE(same_bits(copies[i], expected_p[i].to(at::kBFloat16)));
    auto& s = opt.state(0, i);
    EXPECT_EQ(s.at("step").item<float>(), 10.0f);
    EXPECT_EQ(s.at("step").dim(), 0);
    EXPECT_TRUE(same_bits(s.at("exp_avg"), expected_m[i]));
    EXPECT_TRUE(same_bits(s.at("exp_avg_sq"), expected_v[i]));
  }
  // step_fused with an explicit fp16 gradient and copy advances only that parameter.
  auto g16 = torch::randn_like(params[0]).to(at::kHalf);
  auto copy16 = torch::empty_like(params[0], at::kHalf);
  opt.step_fused(0, 0, g16, copy16);
  EXPECT_EQ(opt.state(0, 0).at("step").item<float>(), 11.0f);
  EXPECT_EQ(opt.state(0, 1).at("step").item<float>(), 10.0f);
  EXPECT_TRUE(same_bits(copy16, params[0].to(at::kHalf)));
}

// ZeRO-Offload's pipelined update: the layout steps the tensors with a copy itself, range by range and in any
// order, after step() (which advanced their counts and kept the clipping factor) or after begin_host_step()
// (an update during backward, factor 1), even once the LR has moved on. Each element gets exactly the
// whole-tensor update.
TEST(CpuAdamTest, HostRangesEqualWholeSteps) {
  const auto h = hyper(1e-2, 0.1, true);
  auto params = make_params(31);
  auto whole_params = params;
  for (auto& p : whole_params) p = p.clone();
  std::vector<at::Tensor> copies, whole_copies;
  optim::CpuAdam ranged({optim::ParamGroup{params, h}}), whole({optim::ParamGroup{whole_params, h}});
  // Parameter 0 has no copy: it stays the optimizer's own (a partial offload's device piece).
  for (std::size_t i = 1; i < params.size(); ++i) {
    copies.push_back(torch::zeros_like(params[i], at::kBFloat16));
    whole_copies.push_back(torch::zeros_like(params[i], at::kBFloat16));
    ranged.set_param_copy(0, i, copies.back());
    whole.set_param_copy(0, i, whole_copies.back());
  }
  ranged.set_external_host_steps(true);
  for (std::int64_t step = 1; step <= 6; ++step) {
    const bool during_backward = step % 2 == 0;
    const double factor = during_backward ? 1.0 : 0.37;
    std::vector<at::Tensor> grads;
    for (std::size_t i = 0; i < params.size(); ++i) {
      grads.push_back(torch::randn_like(params[i]).to(at::kBFloat16));
      params[i].mutable_grad() = grads[i];
      whole_params[i].mutable_grad() = grads[i];
    }
    const double lr = 1e-2 / static_cast<double>(step);  // a schedule
    ranged.set_lr(0, lr);
    whole.set_lr(0, lr);
    if (during_backward) ranged.begin_host_step();
    ranged.take_gradient_scale(factor);
    ranged.step();
    whole.take_gradient_scale(factor);
    whole.step();
    ranged.set_lr(0, 5.0);  // the scheduler moves on before the queued ranges run: they keep their step's LR
    for (std::size_t i = params.size() - 1; i >= 1; --i) {  // ranges back to front, three per tensor
      const std::int64_t n = params[i].numel(), a = n / 3, b = 2 * n / 3;
      for (auto [lo, hi] : {std::pair{b, n}, std::pair{std::int64_t{0}, a}, std::pair{a, b}}) {
        if (hi > lo) {
          ranged.step_host_range(0, i, lo, hi - lo, grads[i].narrow(0, lo, hi - lo).contiguous(),
                                 ranged.host_gradient_scale());
        }
      }
    }
  }
  for (std::size_t i = 0; i < params.size(); ++i) {
    EXPECT_TRUE(same_bits(params[i], whole_params[i])) << "param " << i;
    EXPECT_EQ(ranged.state(0, i).at("step").item<float>(), 6.0f);
    EXPECT_TRUE(same_bits(ranged.state(0, i).at("exp_avg_sq"), whole.state(0, i).at("exp_avg_sq")));
    if (i > 0) EXPECT_TRUE(same_bits(copies[i - 1], whole_copies[i - 1])) << "copy " << i;
  }
  // A tensor the optimizer steps itself, a range past the end, a gradient of the wrong size: refused.
  EXPECT_THROW(ranged.step_host_range(0, 0, 0, 1, grads_of_one(), 1.0f), std::invalid_argument);
  EXPECT_THROW(ranged.step_host_range(0, 1, 0, params[1].numel() + 1, torch::zeros({params[1].numel() + 1}), 1.0f),
               std::invalid_argument);
  EXPECT_THROW(ranged.step_host_range(0, 1, 0, 1, torch::zeros({2}), 1.0f), std::invalid_argument);
  EXPECT_THROW(ranged.restore_host_range(0, 1, 0, 1, nullptr), std::invalid_argument);
}

// ZeRO-Offload's speculation: a range updated with a backup, then restored and updated again with the factor
// the step really had, ends bit-identical to the one update with that factor (the rollback); a range updated
// with a backup and kept is bit-identical to the update without one (the commit), and its backup holds the
// values from before. Sizes span several of the kernel's blocks, with a ragged end, threaded and not.
TEST(CpuAdamTest, SpeculativeRangesRollBackExactly) {
  const auto h = hyper(1e-2, 0.1, true);
  for (const bool parallel : {false, true}) {
    const std::int64_t n = 3 * 65536 + 1234;
    auto p = torch::randn({n}), reference = p.clone();
    auto copy = torch::zeros({n}, at::kBFloat16), reference_copy = torch::zeros({n}, at::kBFloat16);
    optim::CpuAdam spec({optim::ParamGroup{{p}, h}}), plain({optim::ParamGroup{{reference}, h}});
    spec.set_param_copy(0, 0, copy);
    plain.set_param_copy(0, 0, reference_copy);
    spec.set_external_host_steps(true);
    plain.set_external_host_steps(true);
    spec.set_parallel(parallel);
    std::vector<float> backup(static_cast<std::size_t>(3 * n));
    for (std::int64_t step = 1; step <= 4; ++step) {
      const auto grad = torch::randn({n}).to(at::kBFloat16);
      const float factor = step % 2 == 0 ? 0.37f : 1.0f;  // even steps are "clipped": the speculation is undone
      const auto before_p = p.clone(), before_m = spec.state(0, 0).at("exp_avg").clone();
      spec.begin_host_step();
      plain.begin_host_step();
      // The second half speculatively (the first half waited for the verdict, as a layout out of backup does).
      const std::int64_t half = n / 2;
      spec.step_host_range(0, 0, half, n - half, grad.narrow(0, half, n - half).contiguous(), 1.0f, backup.data());
      const auto saved = torch::from_blob(backup.data(), {3, n - half});
      EXPECT_TRUE(same_bits(saved[0], before_p.narrow(0, half, n - half)));
      EXPECT_TRUE(same_bits(saved[1], before_m.narrow(0, half, n - half)));
      if (factor != 1.0f) {
        spec.restore_host_range(0, 0, half, n - half, backup.data());
        EXPECT_TRUE(same_bits(p, before_p));
        spec.step_host_range(0, 0, half, n - half, grad.narrow(0, half, n - half).contiguous(), factor);
      }
      spec.step_host_range(0, 0, 0, half, grad.narrow(0, 0, half).contiguous(), factor);
      plain.step_host_range(0, 0, 0, n, grad, factor);
    }
    EXPECT_TRUE(same_bits(p, reference)) << "parallel " << parallel;
    EXPECT_TRUE(same_bits(copy, reference_copy));
    EXPECT_TRUE(same_bits(spec.state(0, 0).at("exp_avg"), plain.state(0, 0).at("exp_avg")));
    EXPECT_TRUE(same_bits(spec.state(0, 0).at("exp_avg_sq"), plain.state(0, 0).at("exp_avg_sq")));
  }
}

TEST(CpuAdamTest, RejectsWhatItCannotRun) {
  optim::Hyper h;
  const auto make = [&h](at::Tensor p) { return optim::CpuAdam({optim::ParamGroup{{std::move(p)}, h}}); };
  EXPECT_THROW(make(torch::zeros({4}, at::kDouble)), std::invalid_argument);
  EXPECT_THROW(make(torch::zeros({4, 4}).t()), std::invalid_argument);
  h.amsgrad = true;
  EXPECT_THROW(make(torch::zeros({4})), std::invalid_argument);
  h.amsgrad = false;
  optim::CpuAdam opt({optim::ParamGroup{{torch::zeros({4})}, h}});
  // A rejected gradient leaves the step count alone, so the call can be retried.
  EXPECT_THROW(opt.step_fused(0, 0, torch::zeros({4}, at::kDouble)), std::invalid_argument);
  EXPECT_THROW(opt.step_fused(0, 0, torch::zeros({5})), std::invalid_argument);
  EXPECT_THROW(opt.set_param_copy(0, 0, torch::zeros({4})), std::invalid_argument);
  opt.step_fused(0, 0, torch::ones({4}));
  EXPECT_EQ(opt.state(0, 0).at("step").item<float>(), 1.0f);
  optim::CpuAdamShard empty;
  EXPECT_NO_THROW(optim::cpu_adam_step(h, 1, empty));
  EXPECT_THROW(optim::cpu_adam_step(h, 0, empty), std::invalid_argument);
}
