// FusedLamb against a per-element reference written here from DeepSpeed's formulas (fused_lamb_cuda_kernel.cu:
// uncorrected moments inside the update, bias correction folded into the step size, trust ratio
// ‖p‖/‖update‖ clamped to [min_coeff, max_coeff], 1 when either norm is zero).
#include <gtest/gtest.h>

#include <cmath>

#include <torch/torch.h>

#include "deepspeed/optim/lamb.h"

using namespace deepspeed;

namespace {

struct RefLamb {
  std::vector<float> p, m, v;
  int t = 0;

  explicit RefLamb(const at::Tensor& init) {
    const auto c = init.contiguous();
    p.assign(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
    m.assign(p.size(), 0.0f);
    v.assign(p.size(), 0.0f);
  }

  // Returns the trust ratio used.
  double step(const at::Tensor& grad, const optim::Hyper& h, bool eps_inside_sqrt, double scale = 1.0) {
    ++t;
    const auto g = grad.to(at::kFloat).contiguous();
    const float* gp = g.data_ptr<float>();
    const auto b1 = static_cast<float>(h.beta1), b2 = static_cast<float>(h.beta2);
    const auto eps = static_cast<float>(h.eps), wd = static_cast<float>(h.weight_decay);
    std::vector<float> u(p.size());
    double w2 = 0, u2 = 0;
    for (std::size_t j = 0; j < p.size(); ++j) {
      const float sg = gp[j] / static_cast<float>(scale);
      m[j] = b1 * m[j] + (1 - b1) * sg;
      v[j] = b2 * v[j] + (1 - b2) * sg * sg;
      const float denom = eps_inside_sqrt ? std::sqrt(v[j] + eps) : std::sqrt(v[j]) + eps;
      u[j] = m[j] / denom + wd * p[j];
      w2 += static_cast<double>(p[j]) * p[j];
      u2 += static_cast<double>(u[j]) * u[j];
    }
    const double w_norm = std::sqrt(w2), u_norm = std::sqrt(u2);
    double coeff = 1.0;
    if (w_norm != 0 && u_norm != 0) {
      coeff = w_norm / u_norm;
      if (coeff > h.max_coeff) coeff = h.max_coeff;
      if (coeff < h.min_coeff) coeff = h.min_coeff;
    }
    const double step_size =
        h.bias_correction ? h.lr * std::sqrt(1 - std::pow(h.beta2, t)) / (1 - std::pow(h.beta1, t)) : h.lr;
    for (std::size_t j = 0; j < p.size(); ++j) p[j] -= static_cast<float>(step_size * coeff) * u[j];
    return coeff;
  }

  at::Tensor tensor() const { return torch::from_blob(const_cast<float*>(p.data()), {static_cast<std::int64_t>(p.size())}).clone(); }
};

double relative_error(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>() / (b.abs().max().item<double>() + 1e-12);
}

struct LambRun {
  double param_error = 0;  // worst over tensors, end of run
  double coeff_error = 0;  // worst relative trust-ratio difference over all steps
  std::vector<double> last_coeffs;
};

// Steps FusedLamb and the reference side by side on `params` (CPU fp32 initial values).
LambRun run_lamb(const std::vector<at::Tensor>& init, const optim::Hyper& h, bool eps_inside_sqrt, int steps,
        at::ScalarType grad_type = at::kFloat, double scale = 1.0, bool zero_grads = false) {
  std::vector<at::Tensor> params;
  std::vector<RefLamb> refs;
  for (const auto& t : init) {
    params.push_back(t.clone());
    refs.emplace_back(t);
  }
  optim::FusedLamb opt({optim::ParamGroup{params, h}}, eps_inside_sqrt);
  LambRun r;
  for (int s = 0; s < steps; ++s) {
    torch::manual_seed(300 + s);
    std::vector<double> ref_coeffs;
    for (std::size_t i = 0; i < params.size(); ++i) {
      auto g = zero_grads ? torch::zeros_like(params[i]) : (torch::randn_like(params[i]) * scale).to(grad_type);
      params[i].mutable_grad() = g;
      ref_coeffs.push_back(refs[i].step(g, h, eps_inside_sqrt, scale));
    }
    opt.step(scale);
    r.last_coeffs = opt.lamb_coeffs();
    EXPECT_EQ(r.last_coeffs.size(), params.size());
    for (std::size_t i = 0; i < ref_coeffs.size(); ++i) {
      r.coeff_error = std::max(r.coeff_error, std::abs(r.last_coeffs[i] - ref_coeffs[i]) / ref_coeffs[i]);
    }
  }
  for (std::size_t i = 0; i < params.size(); ++i) {
    r.param_error = std::max(r.param_error, relative_error(params[i], refs[i].tensor()));
  }
  return r;
}

std::vector<at::Tensor> make_params(std::uint64_t seed, double scale = 1.0) {
  torch::manual_seed(seed);
  std::vector<at::Tensor> out;
  for (std::int64_t n : {1, 7, 33, 1031, 4099}) out.push_back(torch::randn({n}) * scale);
  return out;
}

optim::Hyper lamb_hyper() {
  optim::Hyper h;
  h.lr = 1e-2;
  h.beta1 = 0.9;
  h.beta2 = 0.99;
  h.eps = 1e-6;
  h.weight_decay = 0.01;
  return h;
}

}  // namespace

TEST(LambTest, MatchesReferenceAcrossModes) {
  for (bool eps_inside_sqrt : {false, true}) {
    for (bool bias_correction : {true, false}) {
      for (double wd : {0.0, 0.01}) {
        auto h = lamb_hyper();
        h.bias_correction = bias_correction;
        h.weight_decay = wd;
        const LambRun r = run_lamb(make_params(1), h, eps_inside_sqrt, 50);
        const std::string what = "eps_inside_sqrt=" + std::to_string(eps_inside_sqrt) +
                                 " bias_correction=" + std::to_string(bias_correction) + " wd=" + std::to_string(wd);
        EXPECT_LE(r.param_error, 1e-6) << what;
        EXPECT_LE(r.coeff_error, 1e-6) << what;
      }
    }
  }
}

TEST(LambTest, TrustRatioClampsToMaxAndMin) {
  auto h = lamb_hyper();
  h.max_coeff = 10.0;
  h.min_coeff = 0.01;
  // ‖p‖/‖u‖ ≈ 100 for weights of scale 100 (the Adam direction is O(1) per element): clamped to max_coeff.
  LambRun big = run_lamb(make_params(2, 100.0), h, false, 10);
  EXPECT_LE(big.param_error, 1e-6);
  for (double c : big.last_coeffs) EXPECT_EQ(c, 10.0);
  // Weights of scale 1e-4 give a ratio ≈ 1e-4: clamped to min_coeff.
  h.weight_decay = 0;
  LambRun small = run_lamb(make_params(3, 1e-4), h, false, 10);
  EXPECT_LE(small.param_error, 1e-6);
  for (double c : small.last_coeffs) EXPECT_NEAR(c, 0.01, 1e-9);
  // Tighter, user-set bounds.
  h.max_coeff = 0.5;
  h.min_coeff = 0.2;
  LambRun bounded = run_lamb(make_params(4), h, false, 10);
  EXPECT_LE(bounded.param_error, 1e-6);
  for (double c : bounded.last_coeffs) EXPECT_TRUE(c >= 0.2 - 1e-7 && c <= 0.5 + 1e-7) << c;
}

TEST(LambTest, ZeroNormsGiveUnitRatio) {
  auto h = lamb_hyper();
  // Zero weights: ‖p‖ = 0, so the first step uses ratio 1 (not min_coeff).
  std::vector<at::Tensor> zeros = {torch::zeros({17}), torch::zeros({1})};
  LambRun r = run_lamb(zeros, h, false, 1);
  for (double c : r.last_coeffs) EXPECT_EQ(c, 1.0);
  EXPECT_LE(r.param_error, 1e-6);
  // Zero gradients and no decay: the update is zero, ratio 1, weights unchanged.
  h.weight_decay = 0;
  const auto init = make_params(5);
  LambRun still = run_lamb(init, h, false, 3, at::kFloat, 1.0, /*zero_grads=*/true);
  for (double c : still.last_coeffs) EXPECT_EQ(c, 1.0);
  EXPECT_EQ(still.param_error, 0.0);
}

TEST(LambTest, HalfGradientsAndGradScale) {
  auto h = lamb_hyper();
  for (auto gt : {at::kBFloat16, at::kHalf}) {
    const LambRun r = run_lamb(make_params(6), h, false, 20, gt, /*scale=*/64.0);
    EXPECT_LE(r.param_error, 1e-6) << c10::toString(gt);
    EXPECT_LE(r.coeff_error, 1e-6) << c10::toString(gt);
  }
}

TEST(LambTest, BuiltFromConfig) {
  config::OptimizerConfig c;
  c.type = "lamb";
  c.lr = 2e-3;
  c.betas = {0.85, 0.98};
  c.eps = 1e-7;
  c.weight_decay = 0.05;
  c.max_coeff = 3.0;
  c.min_coeff = 0.05;
  auto params = make_params(7);
  auto opt = optim::make_optimizer(c, {optim::ParamGroup{params, {}}});
  EXPECT_EQ(opt->name(), "FusedLamb");
  const auto& h = opt->param_groups()[0].hyper;
  EXPECT_EQ(h.max_coeff, 3.0);
  EXPECT_EQ(h.min_coeff, 0.05);
  EXPECT_EQ(opt->momentum_repr(), "[(0.85, 0.98)]");
  const LambRun r = run_lamb(make_params(7), h, false, 20);
  EXPECT_LE(r.param_error, 1e-6);
  c.amsgrad = true;
  EXPECT_THROW(optim::make_optimizer(c, {optim::ParamGroup{params, {}}}), std::invalid_argument);
}

// Same math on the GPU as on the CPU (runs only where CUDA is available; the device scripts run it).
TEST(LambTest, CudaMatchesCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  auto h = lamb_hyper();
  auto cpu = make_params(8);
  std::vector<at::Tensor> gpu;
  for (const auto& p : cpu) gpu.push_back(p.to(at::kCUDA));
  optim::FusedLamb cpu_opt({optim::ParamGroup{cpu, h}});
  optim::FusedLamb gpu_opt({optim::ParamGroup{gpu, h}});
  for (int s = 0; s < 20; ++s) {
    for (std::size_t i = 0; i < cpu.size(); ++i) {
      auto g = torch::randn_like(cpu[i]);
      cpu[i].mutable_grad() = g;
      gpu[i].mutable_grad() = g.to(at::kCUDA);
    }
    cpu_opt.step();
    gpu_opt.step();
  }
  for (std::size_t i = 0; i < cpu.size(); ++i) EXPECT_LE(relative_error(gpu[i].cpu(), cpu[i]), 1e-5);
}
