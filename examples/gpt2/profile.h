#pragma once
/// \file
/// Where a training step's time goes: LibTorch's Kineto profiler around a span of steps, summarised as device
/// time per kernel category, the top kernels and the device's idle time between kernels, with an optional
/// Chrome trace (chrome://tracing, Perfetto).
/// The GPT-2 example's `--profile-steps N` uses it; the closing note of a benchmark quotes its table.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <c10/core/Device.h>

namespace deepspeed::examples::gpt2 {

/// A coarse kernel category from a kernel (or op) name: "GEMM", "attention", "cross-entropy", "LayerNorm",
/// "bias+GELU", "optimizer", "communication", "copy/fill", "reduction", "elementwise" or "other". Pure.
std::string kernel_category(std::string_view name);

struct ProfileRow {
  std::string name;
  double total_ms = 0;
  std::int64_t calls = 0;
};

/// Sums `durations` (name, ns) by name and by kernel_category(name), largest first. Pure.
std::vector<ProfileRow> rows_by_name(const std::vector<std::pair<std::string, std::uint64_t>>& durations);
std::vector<ProfileRow> rows_by_category(const std::vector<std::pair<std::string, std::uint64_t>>& durations);

/// One kernel (or copy) on the device: [start_ns, end_ns) and its name.
struct DeviceSpan {
  std::uint64_t start_ns = 0, end_ns = 0;
  std::string name;
};

/// How long the device sat idle between its kernels over a profiled span: the spans merged where they overlap
/// (concurrent streams), `busy` their union, `idle` the rest of first start → last end, and the largest gaps
/// with the kernels either side (the host was late to launch the next one, or waited for the device). Pure.
struct IdleSummary {
  struct Gap {
    double ms = 0;
    std::string before, after;
  };
  double span_ms = 0, busy_ms = 0, idle_ms = 0;
  std::int64_t gaps = 0;     ///< gaps between busy intervals, any length
  std::vector<Gap> largest;  ///< at most `top`, longest first
};
IdleSummary idle_between(std::vector<DeviceSpan> spans, std::size_t top = 5);

/// Profiles the calling thread's ops and, on CUDA, every kernel on the device. Not collective: profile one
/// rank (the example profiles rank 0).
class StepProfiler {
 public:
  StepProfiler(c10::Device device, std::string trace_path) : device_(device), trace_path_(std::move(trace_path)) {}
  /// Synchronizes the device, then starts recording.
  void start();
  /// Synchronizes, stops, prints the tables for `steps` steps (per step times), writes the trace if a path was
  /// given. On the CPU the rows are host ops, which nest (aten::linear contains aten::addmm): shares overlap.
  void stop(std::int64_t steps);

 private:
  c10::Device device_;
  std::string trace_path_;
  bool running_ = false;
};

}  // namespace deepspeed::examples::gpt2
