#pragma once
/// \file
/// DeepSpeed's flops profiler (the `flops_profiler` config section): counts the multiply-accumulates (MACs)
/// and floating-point operations of a model's forward pass, per module, and prints DeepSpeed's
/// "DeepSpeed Flops Profiler" summary, aggregated and detailed profiles.
///
/// How it counts. LibTorch modules have no forward hooks, so the profiler watches ATen operators instead:
/// while started, a thread-local at::RecordFunction callback sees every operator the starting thread runs,
/// with its arguments. Each operator it recognises (linear, conv, matmul/bmm/addmm/baddbmm, activations,
/// pooling, softmax, the norms, embedding, dropout, scaled_dot_product_attention, add, mul, ...) is costed
/// with DeepSpeed's formula; only the outermost recognised operator of a call counts (aten::linear calls
/// aten::addmm: one linear is counted). Operators run by autograd's backward are never counted.
///
/// Attribution. An operator that takes a parameter as an argument is charged to the module owning that
/// parameter (to the deepest module owning all of them when it takes several); its figures then appear in
/// that module and every ancestor. An operator that takes no parameter (a functional relu, a pooling module
/// without weights, a residual add) is charged to the root module only: it is in the totals but in no child,
/// whereas DeepSpeed, which hooks every module, charges it to the module whose forward called it. Parameters
/// are recognised by their TensorImpl (ZeRO-3's gather swaps a parameter's storage in place, keeping the
/// TensorImpl) and, failing that, by their data pointer as recorded at start() (detached aliases).
///
/// Latency. A module's "fwd latency" is the wall time of the counted operators charged to it (and to its
/// descendants), each operator bracketed by a device synchronisation when its tensors are on an accelerator,
/// as DeepSpeed synchronises around module forwards. Uncounted operators (views, reshapes, losses) are not
/// timed, so the root's figure is below the true forward time; the summary's "fwd latency" is the caller's
/// measurement when it gives one (ReportContext::fwd_ms).

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "deepspeed/config/config.h"

namespace torch::nn {
class Module;
}

namespace deepspeed::profiling {

/// DeepSpeed's number formatting (profiler.py's number_to_string and friends): the value scaled to T, G, M,
/// K, (none), m or u, rounded to two decimals and printed as Python's "{:g}", then a space and the prefix.
/// 336.23e6 → "336.23 M"; 0 → "0 ".
std::string number_to_string(double num);
std::string macs_to_string(double macs);          ///< "3139.93 GMACs"
std::string flops_to_string(double flops);        ///< "81.9 TFLOPS"
std::string params_to_string(double params);      ///< "336.23 M", "1.5 B" (G is written B), no trailing space
std::string duration_to_string(double seconds);   ///< "34.09 us", "76.67 ms"

/// One module's figures; MACs, flops, latency and params include the module's descendants (as DeepSpeed
/// reports them).
struct ModuleProfile {
  std::string name;   ///< qualified name: "" for the root, "conv1", "h.0.attn"
  std::string type;   ///< the class name as shown: "Linear", "Conv2d" (namespace and "Impl" dropped)
  int depth = 0;      ///< 0 for the root
  int parent = -1;    ///< index of the parent in module_profiles(), -1 for the root
  std::int64_t params = 0;
  std::int64_t macs = 0;
  std::int64_t flops = 0;
  double latency_s = 0;  ///< wall time of the counted operators charged here
};

class FlopsProfiler {
 public:
  /// What the summary needs from the engine. A negative time means "not measured": fwd_ms < 0 uses the
  /// profiler's own operator time; bwd_ms < 0 or step_ms < 0 leaves out the backward/step/iteration lines
  /// (DeepSpeed prints them only with wall_clock_breakdown). world_size <= 0 leaves out the world size, data
  /// and model parallel sizes and batch size lines (DeepSpeed without an engine).
  struct ReportContext {
    std::int64_t step = 1;
    std::int64_t world_size = 0;
    std::int64_t dp_size = 0;
    std::int64_t batch_per_gpu = 0;
    double fwd_ms = -1;
    double bwd_ms = -1;
    double step_ms = -1;
  };

  /// Reads the module tree and parameter counts of `model` (all parameters, trainable or not, as DeepSpeed
  /// counts them). The tree is fixed from here on: modules registered later are not seen.
  FlopsProfiler(config::FlopsProfilerConfig cfg, std::shared_ptr<torch::nn::Module> model);
  /// Stops first if started; must then run on the thread that called start().
  ~FlopsProfiler();
  FlopsProfiler(const FlopsProfiler&) = delete;
  FlopsProfiler& operator=(const FlopsProfiler&) = delete;

  /// Starts counting the operators this thread runs (not other threads'; not autograd's backward). Counts
  /// add to what earlier start()/stop() windows gathered; reset() clears them. Refreshes the parameter
  /// data-pointer table. Throws UsageError if already started or if another profiler is started on this
  /// thread.
  void start();
  /// Stops counting. Call on the thread that called start() (the callback is thread-local); no-op if stopped.
  void stop();
  bool started() const;
  /// Clears the counts and latencies and re-reads parameter counts (e.g. after ZeRO-3 gathered them).
  /// Counting state (started or not) is unchanged; while started, call it on the counting thread (throws
  /// UsageError otherwise).
  void reset();

  /// Totals over the whole model, from any thread once stopped (while started, from the counting thread).
  std::int64_t total_macs() const;
  std::int64_t total_flops() const;
  std::int64_t total_params() const;
  double total_latency_s() const;

  /// Every module, root first, in registration order (depth-first); parents come before their children.
  std::vector<ModuleProfile> module_profiles() const;
  /// The module with this qualified name ("" = root), or nullopt.
  std::optional<ModuleProfile> module_profile(const std::string& name) const;

  /// DeepSpeed's printed profile: summary, "Aggregated Profile per GPU" (top `top_modules` module classes
  /// per depth by params, MACs and fwd latency, for depths 0 … module_depth−1; −1 = all but the innermost,
  /// DeepSpeed's range), and with `detailed` the module tree annotated with each module's figures.
  std::string report(const ReportContext& ctx) const;
  /// Writes report(ctx) to the config's output_file (replacing it, creating its directory) or, when none is
  /// set, to standard output. Throws UsageError if the file cannot be written.
  void write_report(const ReportContext& ctx) const;

  const config::FlopsProfilerConfig& config() const;

  struct Impl;  // src/profiling/profiler_impl.h

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace deepspeed::profiling
