// cpu_adam_bench: parameters/s of DeepSpeedCPUAdam's fused step against LibTorch's fused CPU AdamW, the
// ZeRO-Offload step shape (16-bit gradients in, 16-bit parameters out) and the plain fp32 one.
//
//   cpu_adam_bench [--threads N] [--sizes 16M,128M] [--iters K] [--scalar]
//
// Rows (the same fp32 parameter/moment buffers serve every row):
//   bf16  ours      cpu_adam_step: bf16 grads up-cast in-kernel, bf16 copy of the params written in the same pass
//   bf16  torch     grads.copy_ into fp32 (LibTorch cast) + at::_fused_adamw_ + params cast into bf16
//   fp32  ours      cpu_adam_step on fp32 grads, no write-back
//   fp32  torch     at::_fused_adamw_ on fp32 grads
//   bf16/fp32 norm  Σg² of the gradients (the clipping pass offload runs over host gradients): ours
//                   (optim::squared_l2_norm) against LibTorch's vector norm with the fp64 accumulation it used
// Casts write into preallocated buffers (LibTorch's best case; `.to()` would also pay for allocation).
// "bytes/param" counts each array element read or written once (no write-allocate traffic): 28 for the fused
// and fp32 rows, 40 for LibTorch + casts. A STREAM-style copy and in-place update on the same threads, counted
// the same way, give the machine's scale.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <omp.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/version.h>

#include "bench/bench_util.h"
#include "deepspeed/optim/clip.h"
#include "deepspeed/optim/cpu_adam.h"

using namespace deepspeed;

namespace {

struct Options {
  int threads = 0;  // 0: leave the runtime default
  std::vector<std::int64_t> sizes = {16 << 20, 128 << 20};
  int iters = 0;  // 0: by size
  bool scalar = false;
};

using deepspeed::bench::median;
using deepspeed::bench::parse_size;

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      return argv[++i];
    };
    if (a == "--threads") {
      o.threads = std::stoi(next());
    } else if (a == "--sizes") {
      o.sizes.clear();
      std::stringstream ss(next());
      for (std::string item; std::getline(ss, item, ',');) o.sizes.push_back(parse_size(item));
    } else if (a == "--iters") {
      o.iters = std::stoi(next());
    } else if (a == "--scalar") {
      o.scalar = true;
    } else {
      throw std::invalid_argument("unknown argument " + a + " (see the comment atop bench/cpu_adam_bench.cpp)");
    }
  }
  return o;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown";
}

// Which OpenMP runtimes are mapped: LibTorch's wheel ships libgomp.so.1 and ours must be the same copy.
std::string mapped_openmp() {
  std::ifstream in("/proc/self/maps");
  std::set<std::string> libs;
  for (std::string line; std::getline(in, line);) {
    const auto slash = line.find('/');
    if (slash == std::string::npos) continue;
    const std::string path = line.substr(slash);
    if (path.find("libgomp") != std::string::npos || path.find("libiomp") != std::string::npos ||
        path.find("libomp") != std::string::npos) {
      libs.insert(path);
    }
  }
  std::string out;
  for (const auto& l : libs) out += (out.empty() ? "" : ", ") + l;
  return out.empty() ? "none" : out;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// STREAM-style bandwidths on the bench's threads, counted like the rows (each element read or written once):
// Copy (b = a, 16 B per double) and an in-place update (a = s·a, 16 B), the optimizer's access pattern.
struct Bandwidth {
  double copy, update;
};
Bandwidth stream_bandwidth(int iters) {
  const std::int64_t n = std::int64_t{64} << 20;  // doubles: 512 MiB per array
  std::vector<double> a(n, 1.0), b(n, 0.0);
  std::vector<double> copy, update;
  for (int it = 0; it < iters + 1; ++it) {
    auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < n; ++i) b[i] = a[i];
    if (it > 0) copy.push_back(seconds_since(t0));
    t0 = std::chrono::steady_clock::now();
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < n; ++i) a[i] *= 0.999;
    if (it > 0) update.push_back(seconds_since(t0));
  }
  const double bytes = 16.0 * static_cast<double>(n);
  return {bytes / median(copy), bytes / median(update)};
}

struct Row {
  std::string grads, impl;
  double bytes_per_param;
  std::function<void()> step;
  std::vector<double> times;
};

}  // namespace

int main(int argc, char** argv) {
  const Options opt = parse(argc, argv);
  if (opt.threads > 0) {
    at::set_num_threads(opt.threads);
    omp_set_num_threads(opt.threads);
  }
  const std::time_t now = std::time(nullptr);
  char date[64];
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M %Z", std::localtime(&now));
  std::printf("cpu_adam_bench  %s\n", date);
  std::printf("cpu: %s, %d hw threads; torch %s; at::get_num_threads()=%d omp_get_max_threads()=%d\n",
              cpu_model().c_str(), omp_get_num_procs(), TORCH_VERSION, at::get_num_threads(), omp_get_max_threads());
  std::printf("kernel ISA: %s; OpenMP runtime(s) mapped: %s\n", optim::cpu_isa_name(optim::best_cpu_isa()),
              mapped_openmp().c_str());
  std::printf("\n");

  std::vector<optim::CpuIsa> isas;
  for (auto isa : {optim::CpuIsa::kAvx512, optim::CpuIsa::kAvx2, optim::CpuIsa::kScalar}) {
    if (optim::cpu_isa_supported(isa) && (isa != optim::CpuIsa::kScalar || opt.scalar)) isas.push_back(isa);
  }

  std::printf("%-6s %-10s %-20s %9s %12s %10s %8s %12s\n", "params", "rows", "impl", "ms/step", "Mparams/s",
              "B/param", "GB/s", "vs torch");
  for (const std::int64_t n : opt.sizes) {
    at::manual_seed(0);
    at::Tensor p = at::randn({n}), m = at::zeros({n}), v = at::zeros({n});
    at::Tensor g32 = at::randn({n}) * 1e-2;
    at::Tensor g16 = g32.to(at::kBFloat16);
    at::Tensor g32_cast = at::empty({n});
    at::Tensor p16 = at::empty({n}, at::kBFloat16);
    at::Tensor step = at::zeros({});
    std::int64_t ours_step = 0;
    optim::Hyper h;
    h.lr = 1e-4;
    h.weight_decay = 0.01;
    const auto torch_adamw = [&](const at::Tensor& grad) {
      step.add_(1);
      at::_fused_adamw_({p}, {grad}, {m}, {v}, {}, {step}, h.lr, h.beta1, h.beta2, h.weight_decay, h.eps,
                        /*amsgrad=*/false, /*maximize=*/false, std::nullopt, std::nullopt);
    };

    std::vector<Row> rows;
    for (auto isa : isas) {
      rows.push_back({"bf16", std::string("ours ") + optim::cpu_isa_name(isa), 28, [&, isa] {
                        optim::cpu_adam_step(h, ++ours_step, p, g16, m, v, p16, {isa});
                      }});
      // The copy through the cache (each line read before it is overwritten) instead of streamed past it.
      if (isa != optim::CpuIsa::kScalar) {
        rows.push_back({"bf16", std::string("ours ") + optim::cpu_isa_name(isa) + " cached", 28, [&, isa] {
                          optim::cpu_adam_step(h, ++ours_step, p, g16, m, v, p16,
                                               {isa, true, /*threads=*/0, /*stream_copy=*/false});
                        }});
      }
    }
    rows.push_back({"bf16", "torch+casts", 40, [&] {
                      g32_cast.copy_(g16);
                      torch_adamw(g32_cast);
                      p16.copy_(p);
                    }});
    for (auto isa : isas) {
      rows.push_back({"fp32", std::string("ours ") + optim::cpu_isa_name(isa), 28, [&, isa] {
                        optim::cpu_adam_step(h, ++ours_step, p, g32, m, v, {}, {isa});
                      }});
    }
    rows.push_back({"fp32", "torch fused", 28, [&] { torch_adamw(g32); }});
    double norm_sink = 0;
    for (const auto* g : {&g16, &g32}) {
      const std::string kind = g == &g16 ? "bf16 norm" : "fp32 norm";
      const double bytes = g == &g16 ? 2 : 4;
      rows.push_back({kind, "ours", bytes, [&, g] { norm_sink += optim::squared_l2_norm({*g}); }});
      rows.push_back({kind, "torch fp64", bytes, [&, g] {
                        norm_sink += at::linalg_vector_norm(*g, 2, std::nullopt, false, at::kDouble).item<double>();
                      }});
    }

    // Interleave rows per iteration so load from other processes spreads over all of them alike.
    const int iters = opt.iters > 0 ? opt.iters : (n >= (64 << 20) ? 7 : 21);
    for (auto& r : rows) r.step();  // warm-up: page in, spin up the thread pool
    for (int it = 0; it < iters; ++it) {
      for (auto& r : rows) {
        const auto t0 = std::chrono::steady_clock::now();
        r.step();
        r.times.push_back(seconds_since(t0));
      }
    }
    std::map<std::string, double> torch_time;  // per kind of row: LibTorch's time, the baseline
    for (const auto& r : rows) {
      if (r.impl.rfind("torch", 0) == 0) torch_time[r.grads] = median(r.times);
    }
    for (const auto& r : rows) {
      const double t = median(r.times);
      const double base = torch_time[r.grads];
      char label[32];
      if (n % (1 << 20) == 0) std::snprintf(label, sizeof label, "%lldM", static_cast<long long>(n >> 20));
      else std::snprintf(label, sizeof label, "%lld", static_cast<long long>(n));
      std::printf("%-6s %-10s %-20s %9.2f %12.1f %10.0f %8.1f %11.2fx\n", label, r.grads.c_str(), r.impl.c_str(),
                  t * 1e3, n / t / 1e6, r.bytes_per_param, r.bytes_per_param * n / t / 1e9, base / t);
    }
    std::printf("\n");
  }
  // Measured last: on the VM this was developed on, the layout its large buffers leave behind measurably
  // slowed the rows that ran after it.
  const Bandwidth bw = stream_bandwidth(5);
  std::printf("STREAM-style bandwidth (%d threads, 512 MiB arrays): copy %.1f GB/s, in-place update %.1f GB/s\n",
              omp_get_max_threads(), bw.copy / 1e9, bw.update / 1e9);
  std::printf("rows: median of interleaved iterations; GB/s = B/param x params / time\n");
  return 0;
}
