#include "examples/gpt2/profile.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

#include <torch/csrc/autograd/profiler_kineto.h>

#include "deepspeed/engine/timers.h"

namespace deepspeed::examples::gpt2 {
namespace {

bool contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }

std::vector<ProfileRow> sorted(std::map<std::string, ProfileRow> rows) {
  std::vector<ProfileRow> out;
  for (auto& [name, row] : rows) out.push_back(row);
  std::sort(out.begin(), out.end(), [](const ProfileRow& a, const ProfileRow& b) { return a.total_ms > b.total_ms; });
  return out;
}

}  // namespace

std::string kernel_category(std::string_view n) {
  std::string s(n);
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  // Order matters: the more specific names first (a flash-attention kernel may mention "gemm").
  if (contains(s, "flash") || contains(s, "fmha") || contains(s, "attention") || contains(s, "attn")) return "attention";
  if (contains(s, "cross_entropy") || contains(s, "log_softmax") || contains(s, "nll_loss") || contains(s, "softmax")) {
    return "cross-entropy";
  }
  if (contains(s, "nccl")) return "communication";
  if (contains(s, "adam") || contains(s, "fused_adam") || contains(s, "multi_tensor")) return "optimizer";
  if (contains(s, "layer_norm") || contains(s, "layernorm") || contains(s, "gammabeta")) return "LayerNorm";
  if (contains(s, "bias_gelu")) return "bias+GELU";  // deepspeed::ops::bias_gelu's kernels, fwd, bwd and fold
  if (contains(s, "gemm") || contains(s, "cutlass") || contains(s, "nvjet") || contains(s, "xmma") ||
      contains(s, "sm90_") || contains(s, "cublas") || contains(s, "aten::mm") || contains(s, "aten::addmm") ||
      contains(s, "aten::bmm") || contains(s, "matmul")) {
    return "GEMM";
  }
  if (contains(s, "memcpy") || contains(s, "memset") || contains(s, "copy") || contains(s, "fill") ||
      contains(s, "into_fp32")) {  // the engine's gradient hand-over: LibTorch's casting copy_ before
    return "copy/fill";
  }
  if (contains(s, "reduce") || contains(s, "norm") || contains(s, "sum")) return "reduction";
  if (contains(s, "elementwise") || contains(s, "vectorized") || contains(s, "unrolled") || contains(s, "gelu") ||
      contains(s, "aten::add") || contains(s, "aten::mul")) {
    return "elementwise";
  }
  return "other";
}

std::vector<ProfileRow> rows_by_name(const std::vector<std::pair<std::string, std::uint64_t>>& durations) {
  std::map<std::string, ProfileRow> rows;
  for (const auto& [name, ns] : durations) {
    auto& r = rows[name];
    r.name = name;
    r.total_ms += static_cast<double>(ns) * 1e-6;
    ++r.calls;
  }
  return sorted(std::move(rows));
}

std::vector<ProfileRow> rows_by_category(const std::vector<std::pair<std::string, std::uint64_t>>& durations) {
  std::map<std::string, ProfileRow> rows;
  for (const auto& [name, ns] : durations) {
    const auto category = kernel_category(name);
    auto& r = rows[category];
    r.name = category;
    r.total_ms += static_cast<double>(ns) * 1e-6;
    ++r.calls;
  }
  return sorted(std::move(rows));
}

IdleSummary idle_between(std::vector<DeviceSpan> spans, std::size_t top) {
  IdleSummary out;
  if (spans.empty()) return out;
  std::sort(spans.begin(), spans.end(), [](const DeviceSpan& a, const DeviceSpan& b) { return a.start_ns < b.start_ns; });
  std::uint64_t busy = 0, begin = spans.front().start_ns, end = spans.front().end_ns;
  std::string last = spans.front().name;  // the kernel that ends the current busy interval
  const std::uint64_t first = begin;
  for (std::size_t i = 1; i < spans.size(); ++i) {
    const DeviceSpan& s = spans[i];
    if (s.start_ns <= end) {  // overlaps or touches the interval: extend it
      if (s.end_ns > end) end = s.end_ns, last = s.name;
      continue;
    }
    busy += end - begin;
    ++out.gaps;
    out.largest.push_back({static_cast<double>(s.start_ns - end) * 1e-6, last, s.name});
    begin = s.start_ns, end = s.end_ns, last = s.name;
  }
  busy += end - begin;
  out.span_ms = static_cast<double>(end - first) * 1e-6;
  out.busy_ms = static_cast<double>(busy) * 1e-6;
  out.idle_ms = out.span_ms - out.busy_ms;
  std::stable_sort(out.largest.begin(), out.largest.end(), [](const auto& a, const auto& b) { return a.ms > b.ms; });
  if (out.largest.size() > top) out.largest.resize(top);
  return out;
}

void StepProfiler::start() {
  namespace prof = torch::profiler::impl;
  std::set<prof::ActivityType> activities{prof::ActivityType::CPU};
  if (device_.is_cuda()) activities.insert(prof::ActivityType::CUDA);
  const prof::ProfilerConfig config(prof::ProfilerState::KINETO);
  torch::autograd::profiler::prepareProfiler(config, activities);
  engine::synchronize_device(device_);
  torch::autograd::profiler::enableProfiler(config, activities);
  running_ = true;
}

void StepProfiler::stop(std::int64_t steps) {
  if (!running_) return;
  engine::synchronize_device(device_);
  auto result = torch::autograd::profiler::disableProfiler();
  running_ = false;
  // Device activity (kernels, copies) on CUDA; host ops on the CPU.
  const auto want = device_.is_cuda() ? c10::DeviceType::CUDA : c10::DeviceType::CPU;
  std::vector<std::pair<std::string, std::uint64_t>> durations;
  std::vector<DeviceSpan> spans;
  double total_ms = 0;
  for (const auto& e : result->events()) {
    if (e.deviceType() != want || e.durationNs() == 0) continue;
    durations.emplace_back(e.name(), e.durationNs());
    if (device_.is_cuda()) spans.push_back({e.startNs(), e.endNs(), e.name()});
    total_ms += static_cast<double>(e.durationNs()) * 1e-6;
  }
  const double per = steps > 0 ? static_cast<double>(steps) : 1.0;
  std::printf("profile: %lld steps, %s time %.1f ms/step%s\n", static_cast<long long>(steps),
              device_.is_cuda() ? "device (kernels and copies)" : "host op", total_ms / per,
              device_.is_cuda() ? "" : " (host ops nest: shares overlap)");
  std::printf("profile: | category | ms/step | share | calls/step |\n");
  for (const auto& r : rows_by_category(durations)) {
    std::printf("profile: | %s | %.2f | %.1f%% | %.0f |\n", r.name.c_str(), r.total_ms / per,
                total_ms > 0 ? 100.0 * r.total_ms / total_ms : 0.0, static_cast<double>(r.calls) / per);
  }
  std::printf("profile: | top kernel | category | ms/step | share | calls/step |\n");
  const auto rows = rows_by_name(durations);
  for (std::size_t i = 0; i < rows.size() && i < 30; ++i) {
    std::string name = rows[i].name.substr(0, 110);
    std::printf("profile: | %s | %s | %.2f | %.1f%% | %.0f |\n", name.c_str(), kernel_category(rows[i].name).c_str(),
                rows[i].total_ms / per, total_ms > 0 ? 100.0 * rows[i].total_ms / total_ms : 0.0,
                static_cast<double>(rows[i].calls) / per);
  }
  if (!spans.empty()) {
    // Kernel time summed above can hide a device waiting for the host: the span's wall time against its busy time.
    const IdleSummary idle = idle_between(std::move(spans));
    std::printf("profile: device idle %.2f ms/step of %.2f (busy %.2f), %.0f gaps/step\n", idle.idle_ms / per,
                idle.span_ms / per, idle.busy_ms / per, static_cast<double>(idle.gaps) / per);
    for (const auto& g : idle.largest) {
      std::printf("profile: | idle gap | %.3f ms | after %s | before %s |\n", g.ms, g.before.substr(0, 60).c_str(),
                  g.after.substr(0, 60).c_str());
    }
  }
  if (!trace_path_.empty()) {
    result->save(trace_path_);
    std::printf("profile: trace written to %s\n", trace_path_.c_str());
  }
  std::fflush(stdout);
}

}  // namespace deepspeed::examples::gpt2
