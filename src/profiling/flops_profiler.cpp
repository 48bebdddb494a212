// FlopsProfiler: the module tree, parameter ownership, and the RecordFunction callback that counts operators.
#include "deepspeed/profiling/flops_profiler.h"

#include <algorithm>
#include <sstream>

#include <c10/core/impl/DeviceGuardImplInterface.h>

#include "deepspeed/util/error.h"
#include "deepspeed/util/logging.h"
#include "src/profiling/profiler_impl.h"

namespace deepspeed::profiling {
namespace {

using Impl = FlopsProfiler::Impl;
using Clock = std::chrono::steady_clock;

// The profiler counting on this thread. RecordFunction callbacks are plain function pointers, so the
// instance is found through this; a thread-local also keeps operators that other threads run (autograd's
// device threads inherit the callback with the thread-local state) from reaching a profiler not theirs.
thread_local Impl* t_active = nullptr;

// "torch::nn::LinearImpl" → "Linear", "(anonymous namespace)::NetImpl" → "Net": the Python class name.
std::string display_type(const std::string& name) {
  std::string type = name;
  if (const auto colon = type.rfind("::"); colon != std::string::npos) type = type.substr(colon + 2);
  if (type.size() > 4 && type.ends_with("Impl")) type.resize(type.size() - 4);
  return type;
}

// LibTorch's pretty_print writes "torch::nn::Linear(in_features=4, out_features=3, bias=true)"; the part in
// parentheses plays the role of PyTorch's extra_repr. Containers and user modules print their name only.
std::string extra_repr(const torch::nn::Module& module) {
  std::ostringstream out;
  module.pretty_print(out);
  const std::string text = out.str();
  const auto open = text.find('(');
  if (open == std::string::npos || text.empty() || text.back() != ')') return "";
  return text.substr(open + 1, text.size() - open - 2);
}

void synchronize(const std::optional<c10::Device>& device) {
  if (!device) return;
  c10::impl::getDeviceGuardImpl(device->type())->synchronizeDevice(device->index());
}

// LibTorch's torch::nn::functional::linear (what nn::Linear runs) calls addmm(bias, input, weight.t()) for 2-D
// inputs instead of aten::linear. An addmm whose bias and matrix are both parameters is that linear layer, and
// is costed as DeepSpeed costs F.linear: 2 × MACs, no flops for the bias.
bool is_fused_linear(std::string_view op, const Impl::Attribution& a) {
  return op == "aten::addmm" && a.param_of_input.size() >= 3 && a.param_of_input[0] >= 0 &&
         a.param_of_input[2] >= 0;
}

std::unique_ptr<at::ObserverContext> on_operator_start(const at::RecordFunction& rf) {
  Impl* p = t_active;
  if (p == nullptr) return nullptr;
  // Inside a counted operator, or anywhere inside a backward node: only track nesting.
  if (!p->stack.empty() || rf.scope() == at::RecordScope::BACKWARD_FUNCTION) {
    p->stack.push_back(Impl::Frame{&rf});
    return nullptr;
  }
  const auto inputs = rf.inputs();
  auto count = detail::count_op(rf.name(), inputs);
  if (!count) return nullptr;  // transparent: the operators it calls are looked at
  const auto attribution = p->attribute(inputs);
  if (is_fused_linear(rf.name(), attribution)) count->flops = 2 * count->macs;
  Impl::Frame frame{&rf, true, *count};
  frame.node = attribution.node;
  for (const auto& v : inputs) {
    if (!v.isTensor() || !v.toTensor().defined()) continue;
    const auto device = v.toTensor().device();
    if (device.type() != c10::kCPU && device.type() != c10::kMeta) frame.device = device;
    break;
  }
  // Time the operator alone: wait for the work queued before it (DeepSpeed synchronises at module edges).
  synchronize(frame.device);
  frame.t0 = Clock::now();
  p->stack.push_back(frame);
  return nullptr;
}

void on_operator_end(const at::RecordFunction& rf, at::ObserverContext*) {
  Impl* p = t_active;
  if (p == nullptr || p->stack.empty() || p->stack.back().rf != &rf) return;
  const Impl::Frame frame = p->stack.back();
  p->stack.pop_back();
  if (!frame.counted) return;
  synchronize(frame.device);
  const double seconds = std::chrono::duration<double>(Clock::now() - frame.t0).count();
  std::lock_guard lock(p->mutex);
  auto& node = p->nodes[frame.node];
  node.own_macs += frame.count.macs;
  node.own_flops += frame.count.flops;
  node.own_latency_s += seconds;
}

}  // namespace

void Impl::add_node(const std::shared_ptr<torch::nn::Module>& module, const std::string& child_key, int parent_index) {
  const int index = static_cast<int>(nodes.size());
  Node node;
  node.module = module;
  node.key = child_key;
  node.parent = parent_index;
  if (parent_index >= 0) {
    const Node& up = nodes[parent_index];
    node.depth = up.depth + 1;
    node.name = up.name.empty() ? child_key : up.name + "." + child_key;
  }
  node.type = display_type(module->name());
  node.extra_repr = extra_repr(*module);
  nodes.push_back(std::move(node));
  if (parent_index >= 0) nodes[parent_index].children.push_back(index);
  for (const auto& child : module->named_children()) add_node(child.value(), child.key(), index);
}

void Impl::read_params() {
  params.clear();
  param_by_impl.clear();
  for (auto& node : nodes) node.params.clear();
  // A parameter shared by several modules belongs to the first that registers it (depth-first order).
  for (std::size_t n = 0; n < nodes.size(); ++n) {
    for (const auto& item : nodes[n].module->named_parameters(/*recurse=*/false)) {
      const at::Tensor& t = item.value();
      if (!t.defined() || param_by_impl.contains(t.unsafeGetTensorImpl())) continue;
      param_by_impl.emplace(t.unsafeGetTensorImpl(), static_cast<int>(params.size()));
      nodes[n].params.push_back(static_cast<int>(params.size()));
      params.push_back(Param{static_cast<int>(n), t.numel(), t});
    }
  }
}

void Impl::index_data_pointers() {
  param_by_ptr.clear();
  for (std::size_t i = 0; i < params.size(); ++i) {
    const at::Tensor& t = params[i].tensor;
    // Released ZeRO-3 parameters (numel 0) have no storage of their own to recognise.
    if (t.numel() == 0 || !t.has_storage()) continue;
    param_by_ptr.emplace(t.data_ptr(), static_cast<int>(i));
  }
}

int Impl::find_param(const at::Tensor& t) const {
  if (const auto it = param_by_impl.find(t.unsafeGetTensorImpl()); it != param_by_impl.end()) return it->second;
  if (param_by_ptr.empty() || t.numel() == 0 || !t.has_storage()) return -1;
  const auto it = param_by_ptr.find(t.data_ptr());
  return it == param_by_ptr.end() ? -1 : it->second;
}

int Impl::common_ancestor(int a, int b) const {
  while (nodes[a].depth > nodes[b].depth) a = nodes[a].parent;
  while (nodes[b].depth > nodes[a].depth) b = nodes[b].parent;
  while (a != b) a = nodes[a].parent, b = nodes[b].parent;
  return a;
}

Impl::Attribution Impl::attribute(c10::ArrayRef<const c10::IValue> inputs) {
  Attribution out;
  out.param_of_input.assign(inputs.size(), -1);
  int owner = -1;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].isTensor() || !inputs[i].toTensor().defined()) continue;
    const int p = find_param(inputs[i].toTensor());
    if (p < 0) continue;
    out.param_of_input[i] = p;
    owner = owner < 0 ? params[p].node : common_ancestor(owner, params[p].node);
  }
  if (owner < 0) return out;
  out.node = owner;
  // Views of the owner's parameters made after start() (weight.t() of a parameter whose storage ZeRO-3
  // swapped in since) miss both tables; their data pointer is the parameter's current one.
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (out.param_of_input[i] >= 0 || !inputs[i].isTensor()) continue;
    const at::Tensor& t = inputs[i].toTensor();
    if (!t.defined() || t.numel() == 0 || !t.has_storage()) continue;
    for (int q : nodes[owner].params) {
      const at::Tensor& param = params[q].tensor;
      if (param.numel() > 0 && param.has_storage() && param.data_ptr() == t.data_ptr()) {
        out.param_of_input[i] = q;
        break;
      }
    }
  }
  std::lock_guard lock(mutex);
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (const int p = out.param_of_input[i]; p >= 0) {
      params[p].numel = std::max(params[p].numel, inputs[i].toTensor().numel());
    }
  }
  return out;
}

std::vector<ModuleProfile> Impl::profiles() const {
  std::vector<ModuleProfile> out(nodes.size());
  std::lock_guard lock(mutex);
  for (std::size_t n = 0; n < nodes.size(); ++n) {
    const Node& node = nodes[n];
    out[n] = ModuleProfile{node.name, node.type, node.depth, node.parent, 0, node.own_macs, node.own_flops,
                           node.own_latency_s};
  }
  for (const Param& p : params) out[p.node].params += p.numel;
  // Children come after their parent, so one backward sweep sums every subtree.
  for (std::size_t n = nodes.size(); n-- > 1;) {
    ModuleProfile& up = out[nodes[n].parent];
    up.params += out[n].params;
    up.macs += out[n].macs;
    up.flops += out[n].flops;
    up.latency_s += out[n].latency_s;
  }
  return out;
}

FlopsProfiler::FlopsProfiler(config::FlopsProfilerConfig cfg, std::shared_ptr<torch::nn::Module> model)
    : impl_(std::make_unique<Impl>()) {
  if (!model) throw UsageError("FlopsProfiler: no model given");
  impl_->cfg = std::move(cfg);
  impl_->model = std::move(model);
  impl_->add_node(impl_->model, "", -1);
  impl_->read_params();
}

FlopsProfiler::~FlopsProfiler() {
  if (!started()) return;
  if (std::this_thread::get_id() == impl_->owner) {
    stop();
  } else {
    // The callback lives in the starting thread's state and cannot be removed from here.
    DS_LOG(kError, "FlopsProfiler destroyed on another thread than the one that started it; stop() it first");
  }
}

void FlopsProfiler::start() {
  if (started()) throw UsageError("FlopsProfiler::start(): already started");
  if (t_active != nullptr) throw UsageError("FlopsProfiler::start(): another profiler is counting on this thread");
  impl_->index_data_pointers();
  impl_->stack.clear();
  impl_->owner = std::this_thread::get_id();
  t_active = impl_.get();
  impl_->handle = at::addThreadLocalCallback(
      at::RecordFunctionCallback(on_operator_start, on_operator_end)
          .needsInputs(true)
          .scopes({at::RecordScope::FUNCTION, at::RecordScope::BACKWARD_FUNCTION}));
}

void FlopsProfiler::stop() {
  if (!started()) return;
  if (std::this_thread::get_id() != impl_->owner) {
    throw UsageError("FlopsProfiler::stop(): call it on the thread that called start()");
  }
  at::removeCallback(*impl_->handle);
  impl_->handle.reset();
  impl_->stack.clear();
  t_active = nullptr;
}

bool FlopsProfiler::started() const { return impl_->handle.has_value(); }

void FlopsProfiler::reset() {
  // The parameter tables are read by the callback without the lock: only the counting thread may touch them.
  if (started() && std::this_thread::get_id() != impl_->owner) {
    throw UsageError("FlopsProfiler::reset(): while started, call it on the thread that called start()");
  }
  std::lock_guard lock(impl_->mutex);
  for (auto& node : impl_->nodes) node.own_macs = node.own_flops = 0, node.own_latency_s = 0;
  impl_->read_params();
  if (started()) impl_->index_data_pointers();
}

std::int64_t FlopsProfiler::total_macs() const { return impl_->profiles()[0].macs; }
std::int64_t FlopsProfiler::total_flops() const { return impl_->profiles()[0].flops; }
std::int64_t FlopsProfiler::total_params() const { return impl_->profiles()[0].params; }
double FlopsProfiler::total_latency_s() const { return impl_->profiles()[0].latency_s; }

std::vector<ModuleProfile> FlopsProfiler::module_profiles() const { return impl_->profiles(); }

std::optional<ModuleProfile> FlopsProfiler::module_profile(const std::string& name) const {
  for (auto& profile : impl_->profiles()) {
    if (profile.name == name) return profile;
  }
  return std::nullopt;
}

const config::FlopsProfilerConfig& FlopsProfiler::config() const { return impl_->cfg; }

}  // namespace deepspeed::profiling
