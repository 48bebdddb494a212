// host_optimizer_bench: one Adagrad or Lion step over offloaded fp32 host masters, the one-pass host kernel
// (src/optim/adagrad_lion_kernels.h) against the LibTorch-op reference it replaces there, with fp32 and bf16
// gradients. Prints the median of --iters steps and the bytes each element moves once read or written
// (fp32 gradient: 20 B/element for both optimizers; bf16: 18).
//
//   host_optimizer_bench [--numel 64M] [--iters 5] [--threads N]
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>

#include "bench/bench_util.h"
#include "src/optim/adagrad_lion_kernels.h"

namespace optim = deepspeed::optim;

namespace {

double median_ms(int iters, const std::function<void()>& step) {
  step();  // first touch and warm-up
  std::vector<double> ms;
  for (int i = 0; i < iters; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    step();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return deepspeed::bench::median(ms);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Adagrad / Lion host step: one-pass kernel vs LibTorch ops"};
  std::string numel_text = "64M";
  int iters = 5, threads = 0;
  app.add_option("--numel", numel_text, "elements (K/M/G suffixes)");
  app.add_option("--iters", iters)->check(CLI::PositiveNumber);
  app.add_option("--threads", threads, "LibTorch intra-op threads (0: its default)");
  CLI11_PARSE(app, argc, argv);
  const std::int64_t numel = deepspeed::bench::parse_size(numel_text);
  if (threads > 0) at::set_num_threads(threads);

  optim::Hyper h;
  h.lr = 1e-4;
  h.beta1 = 0.9;
  h.beta2 = 0.99;
  h.eps = 1e-10;
  h.weight_decay = 0.01;
  at::Tensor p = at::randn({numel}), state = at::zeros({numel});
  std::printf("%lld elements, %d threads, median of %d steps\n", static_cast<long long>(numel), at::get_num_threads(),
              iters);
  std::printf("%-8s %-5s %14s %14s %9s %12s\n", "opt", "grad", "LibTorch ms", "one pass ms", "speed-up", "one pass GB/s");
  for (const auto grad_type : {at::kFloat, at::kBFloat16}) {
    const at::Tensor g = at::randn({numel}).to(grad_type);
    const double bytes = static_cast<double>(numel) * (16 + (grad_type == at::kFloat ? 4 : 2));
    for (const bool lion : {false, true}) {
      const double reference = median_ms(iters, [&] {
        lion ? optim::detail::lion_reference(p, g, state, h) : optim::detail::adagrad_reference(p, g, state, h);
      });
      const double kernel = median_ms(iters, [&] {
        lion ? optim::detail::lion_host(p, g, state, h) : optim::detail::adagrad_host(p, g, state, h);
      });
      std::printf("%-8s %-5s %14.1f %14.1f %8.2fx %12.1f\n", lion ? "Lion" : "Adagrad",
                  grad_type == at::kFloat ? "fp32" : "bf16", reference, kernel, reference / kernel,
                  bytes / kernel / 1e6);
    }
  }
  return 0;
}
