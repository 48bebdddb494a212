#pragma once
// Internal to ds_profiling: the state behind FlopsProfiler, shared by the counting side (flops_profiler.cpp)
// and the printing side (report.cpp).

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <ATen/core/Tensor.h>
#include <ATen/record_function.h>
#include <torch/nn/module.h>

#include "deepspeed/profiling/flops_profiler.h"
#include "src/profiling/flop_formulas.h"

namespace deepspeed::profiling {

struct FlopsProfiler::Impl {
  struct Node {
    std::shared_ptr<torch::nn::Module> module;
    std::string name;        // qualified
    std::string key;         // name under the parent ("conv1", "0")
    std::string type;        // "Linear"
    std::string extra_repr;  // what LibTorch's pretty_print puts in parentheses, "" if nothing
    int depth = 0;
    int parent = -1;
    std::vector<int> children;
    std::vector<int> params;  // indices into Impl::params owned here
    // Figures charged to this module itself (not its descendants). Guarded by `mutex`.
    std::int64_t own_macs = 0, own_flops = 0;
    double own_latency_s = 0;
  };
  struct Param {
    int node = 0;
    std::int64_t numel = 0;  // the largest size seen (at reset(), or as a counted operator's argument)
    at::Tensor tensor;
  };
  // One operator in flight on the counting thread: the outermost recognised one (counted) or any operator
  // inside it or inside a backward node (suppressed).
  struct Frame {
    const at::RecordFunction* rf = nullptr;
    bool counted = false;
    detail::OpCount count;
    int node = 0;
    std::optional<c10::Device> device;  // synchronised around the operator when not the CPU
    std::chrono::steady_clock::time_point t0;
  };

  config::FlopsProfilerConfig cfg;
  std::shared_ptr<torch::nn::Module> model;
  std::vector<Node> nodes;  // depth-first, root at 0
  std::vector<Param> params;
  std::unordered_map<const c10::TensorImpl*, int> param_by_impl;
  std::unordered_map<const void*, int> param_by_ptr;  // rebuilt at start()

  mutable std::mutex mutex;  // counts and parameter sizes: written by the counting thread, read by any
  std::vector<Frame> stack;  // the counting thread only
  std::optional<at::CallbackHandle> handle;
  std::thread::id owner;

  void add_node(const std::shared_ptr<torch::nn::Module>& module, const std::string& key, int parent);
  void read_params();
  void index_data_pointers();
  int find_param(const at::Tensor& t) const;
  int common_ancestor(int a, int b) const;
  // Where an operator with these arguments is charged, and which arguments are parameters (index into
  // `params`, -1 if not). Grows parameter sizes seen larger than recorded (ZeRO-3 gathered them).
  struct Attribution {
    int node = 0;
    std::vector<int> param_of_input;
  };
  Attribution attribute(c10::ArrayRef<const c10::IValue> inputs);
  // Inclusive figures for every node, in `nodes` order.
  std::vector<ModuleProfile> profiles() const;
};

}  // namespace deepspeed::profiling
