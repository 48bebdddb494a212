// Times causal attention forward + backward at the GPT-2 suite's shapes (bf16, T = 1024, head dim 64) with each
// SDPA backend LibTorch 2.11 has on CUDA, one backend enabled at a time (so no silent fallback), and checks its
// output against the flash backend's. The table goes to docs/kernels.md; the switch is ops/attention.h.
//
//   build/bench/sdpa_bench [--iters 30]
#include <cstdio>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/core/grad_mode.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>
#include <CLI/CLI.hpp>

struct Shape {
  const char* model;
  std::int64_t batch, heads;
};

// Enables exactly one backend (the others off), FA3 inside flash when asked.
void only(at::SDPBackend backend, bool fa3) {
  auto& c = at::globalContext();
  c.setSDPUseFlash(backend == at::SDPBackend::flash_attention);
  c.setSDPUseFA3(fa3);
  c.setSDPUseMemEfficient(backend == at::SDPBackend::efficient_attention);
  c.setSDPUseCuDNN(backend == at::SDPBackend::cudnn_attention);
  c.setSDPUseMath(backend == at::SDPBackend::math);
}

int main(int argc, char** argv) {
  CLI::App app{"sdpa_bench"};
  int iters = 30;
  app.add_option("--iters", iters);
  CLI11_PARSE(app, argc, argv);
  if (!at::hasCUDA()) {
    std::printf("sdpa_bench: needs a CUDA device\n");
    return 77;
  }
  const std::vector<Shape> shapes = {{"124M", 32, 12}, {"350M", 16, 16}, {"1.5B", 8, 25}};
  struct Backend {
    const char* name;
    at::SDPBackend sdp;
    bool fa3;
  };
  const std::vector<Backend> backends = {{"flash", at::SDPBackend::flash_attention, false},
                                         {"fa3", at::SDPBackend::flash_attention, true},
                                         {"cudnn", at::SDPBackend::cudnn_attention, false},
                                         {"efficient", at::SDPBackend::efficient_attention, false}};
  std::printf("| model | B×H×T×d | backend | fwd ms | fwd+bwd ms | max |Δ| vs flash |\n|---|---|---|---|---|---|\n");
  for (const auto& s : shapes) {
    const auto opts = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
    at::manual_seed(0);
    auto q = at::randn({s.batch, s.heads, 1024, 64}, opts).requires_grad_(true);
    auto k = at::randn({s.batch, s.heads, 1024, 64}, opts).requires_grad_(true);
    auto v = at::randn({s.batch, s.heads, 1024, 64}, opts).requires_grad_(true);
    auto grad = at::randn({s.batch, s.heads, 1024, 64}, opts);
    at::Tensor reference;
    for (const auto& b : backends) {
      only(b.sdp, b.fa3);
      double fwd_ms = 0, total_ms = 0, diff = -1;
      try {
        auto run = [&](bool backward) {
          auto y = at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true);
          if (backward) y.backward(grad);
          return y;
        };
        for (int i = 0; i < 5; ++i) run(true);
        at::cuda::CUDAEvent e0(cudaEventDefault), e1(cudaEventDefault), e2(cudaEventDefault);
        auto stream = c10::cuda::getCurrentCUDAStream();
        e0.record(stream);
        for (int i = 0; i < iters; ++i) run(false);
        e1.record(stream);
        for (int i = 0; i < iters; ++i) run(true);
        e2.record(stream);
        e2.synchronize();
        fwd_ms = e0.elapsed_time(e1) / iters;
        total_ms = e1.elapsed_time(e2) / iters;
        at::Tensor y;
        {
          at::NoGradGuard no_grad;
          y = run(false).to(at::kFloat);
        }
        if (!reference.defined()) reference = y;
        diff = (y - reference).abs().max().item<double>();
        std::printf("| %s | %lldx%lldx1024x64 | %s | %.3f | %.3f | %.3g |\n", s.model, static_cast<long long>(s.batch),
                    static_cast<long long>(s.heads), b.name, fwd_ms, total_ms, diff);
      } catch (const std::exception& e) {
        std::string what = e.what();
        what = what.substr(0, what.find('\n'));
        std::printf("| %s | %lldx%lldx1024x64 | %s | n/a | n/a | %s |\n", s.model, static_cast<long long>(s.batch),
                    static_cast<long long>(s.heads), b.name, what.substr(0, 120).c_str());
      }
      q.mutable_grad() = at::Tensor();
      k.mutable_grad() = at::Tensor();
      v.mutable_grad() = at::Tensor();
    }
  }
  return 0;
}
