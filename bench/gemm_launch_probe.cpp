// What a GEMM call of a GPT-2 step launches besides its kernel, and what that costs back to back. On Hopper a
// step's profile shows about one device memset per cuBLASLt GEMM (GPT-2 1.5B on an H200, 2026-12-05: 589 memsets
// and 579 GEMM kernels a step), each a ~1 µs activity plus a launch gap. For each GEMM problem ops::linear hands
// cuBLASLt at a size, this lists the heuristic's first algorithms within LibTorch's workspace (run with it, as
// lt_matmul does by default) and within none (run without one, as under DS_GEMM_MEMSET_FREE=1), each with the
// workspace its heuristic reports, the device activities a call launches (Kineto, counted over --iters calls)
// and the mean time a call takes back to back on one stream. LibTorch's own at::mm of the product is the first
// row of each problem.
//
//   build/bench/gemm_launch_probe [--models "1.5B"] [--algos 4] [--iters 20]
#include <cstdio>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <CLI/CLI.hpp>
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/autograd/profiler_kineto.h>

#include "bench/gpt2_shapes.h"
#include "src/ops/linear_gemms.h"
#include "src/ops/lt_matmul.h"

namespace {

using namespace deepspeed::ops::detail;
using deepspeed::bench::time_ms;

// Device activities of one call, averaged over the profiled calls.
struct Activities {
  double kernels = 0, memsets = 0, other = 0;
  std::string kernel;  // the first kernel's name
};

Activities activities_of(const std::function<void()>& fn, int calls) {
  namespace prof = torch::profiler::impl;
  const std::set<prof::ActivityType> kinds{prof::ActivityType::CPU, prof::ActivityType::CUDA};
  const prof::ProfilerConfig config(prof::ProfilerState::KINETO);
  fn();  // a first call (a lazily created handle or plan) outside the count
  c10::cuda::device_synchronize();
  torch::autograd::profiler::prepareProfiler(config, kinds);
  torch::autograd::profiler::enableProfiler(config, kinds);
  for (int i = 0; i < calls; ++i) fn();
  c10::cuda::device_synchronize();
  const auto result = torch::autograd::profiler::disableProfiler();
  Activities a;
  for (const auto& e : result->events()) {
    if (e.deviceType() != c10::DeviceType::CUDA) continue;
    const std::string& name = e.name();
    if (name.find("Memset") != std::string::npos) {
      a.memsets += 1;
    } else if (name.find("Memcpy") != std::string::npos) {
      a.other += 1;
    } else {
      a.kernels += 1;
      if (a.kernel.empty()) a.kernel = name.substr(0, 56);
    }
  }
  a.kernels /= calls, a.memsets /= calls, a.other /= calls;
  return a;
}

struct Problem {
  std::string name;
  LtProblem problem;
  std::function<void()> libtorch;
};

std::vector<Problem> problems(const deepspeed::bench::Gpt2Shape& model, std::vector<at::Tensor>& keep) {
  const auto opts = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  const std::int64_t rows = model.micro * 1024;
  std::vector<Problem> out;
  for (const auto& l : deepspeed::bench::gpt2_linears(model)) {
    at::Tensor x = at::randn({rows, l.in}, opts), w = at::randn({l.out, l.in}, opts) * 0.02,
               bias = l.biased ? at::randn({l.out}, opts) : at::Tensor(), dy = at::randn({rows, l.out}, opts) * 0.01,
               y = at::empty({rows, l.out}, opts), dx = at::empty({rows, l.in}, opts),
               dw = at::empty({l.out, l.in}, opts), db = l.biased ? at::empty({l.out}, opts) : at::Tensor();
    keep.insert(keep.end(), {x, w, dy, y, dx, dw});
    if (l.biased) keep.insert(keep.end(), {bias, db});
    out.push_back({"fwd " + l.name, forward_problem(x, w, bias, y), [x, w, y]() mutable { at::mm_out(y, x, w.t()); }});
    out.push_back({"dx  " + l.name, input_grad_problem(dy, w, dx), [dy, w, dx]() mutable { at::mm_out(dx, dy, w); }});
    out.push_back({(l.biased ? "dW+db " : "dW  ") + l.name, weight_grad_problem(dy, x, dw, db),
                   [dy, x, dw]() mutable { at::mm_out(dw, dy.t(), x); }});
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"gemm_launch_probe"};
  std::string models_arg = "1.5B";
  int algos = 4, iters = 20;
  app.add_option("--models", models_arg, "GPT-2 sizes, space-separated");
  app.add_option("--algos", algos, "how many of each heuristic list to run")->check(CLI::Range(1, 16));
  app.add_option("--iters", iters, "calls profiled and timed per row")->check(CLI::Range(1, 1000));
  CLI11_PARSE(app, argc, argv);
  const auto models = deepspeed::bench::parse_gpt2_shapes(models_arg, "gemm_launch_probe");
  if (!models) return 2;
  if (!at::hasCUDA()) {
    std::printf("gemm_launch_probe: needs a CUDA device\n");
    return 77;
  }
  for (const auto& model : *models) {
    std::vector<at::Tensor> keep;
    std::printf("\n%s (micro-batch %lld, seq 1024, bf16), LibTorch's cuBLASLt workspace %zu bytes\n\n",
                model.name.c_str(), static_cast<long long>(model.micro), at::cuda::getCUDABlasLtWorkspaceSize());
    std::printf("| GEMM | algorithm | needs bytes | kernel | kernels, memsets a call | ms a call |\n"
                "|---|---|---|---|---|---|\n");
    for (auto& p : problems(model, keep)) {
      const Activities t = activities_of(p.libtorch, iters);
      std::printf("| %s | at::mm | — | %s | %.1f, %.1f | %.4f |\n", p.name.c_str(), t.kernel.c_str(), t.kernels,
                  t.memsets, time_ms(p.libtorch, iters));
      for (const bool none : {false, true}) {
        const auto list = lt_algorithms(p.problem, algos, none);
        for (std::size_t i = 0; i < list.size(); ++i) {
          const auto run = [&, i] { lt_run(p.problem, list[i], none); };
          const Activities a = activities_of(run, iters);
          std::printf("| %s | %s #%zu | %zu | %s | %.1f, %.1f | %.4f |\n", p.name.c_str(),
                      none ? "no workspace" : "workspace", i + 1, list[i].workspace_bytes, a.kernel.c_str(), a.kernels,
                      a.memsets, time_ms(run, iters));
        }
      }
    }
  }
  return 0;
}
