#pragma once
/// \file
/// ZeRO-3 units: the granularity at which partitioned parameters are gathered and released.
///
/// LibTorch modules have no forward hooks, so a block's forward must pass through a place that can gather its
/// weights. A Unit is that place: a cheap handle on a submodule, declared once in the model's constructor and
/// called instead of the submodule in forward:
///
///   struct GPTImpl : torch::nn::Module {
///     GPTImpl(...) {
///       for (int i = 0; i < n; ++i) {
///         blocks.push_back(register_module("h" + std::to_string(i), Block(...)));
///         units.emplace_back(blocks.back());           // the one line per block
///       }
///     }
///     at::Tensor forward(at::Tensor x) {
///       for (auto& unit : units) x = unit(x);             // instead of blocks[i]->forward(x)
///       ...
///     }
///     std::vector<Block> blocks;
///     std::vector<deepspeed::zero::Unit> units;
///   };
///
/// Parameter names are unchanged (the unit registers nothing). Without ZeRO-3 a unit just calls the module.
/// With ZeRO-3, outside its unit's forward and backward a parameter holds no full copy (numel 0, as in
/// DeepSpeed). Parameters that belong to no unit form the root unit, which stays gathered (DeepSpeed's
/// persistent parameters). The whole model as one unit is correct but saves no memory.
///
/// Automatic units: when a model declares none, initialize() makes a unit of every child of every
/// torch::nn::Sequential in the model (the outermost ones; a Sequential calls its children through a list
/// that can be re-pointed at a wrapper). A torch::nn::ModuleList cannot be done that way: the model calls
/// its elements itself, through their concrete types, so nothing between the call and the element can
/// gather. For a ModuleList, one line in the constructor and a loop over the units in forward:
///
///   units = deepspeed::zero::units_of<BlockImpl>(h);   // h: a ModuleList of Blocks
///   for (auto& unit : units) x = unit(x);

#include <functional>
#include <memory>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/modules/container/modulelist.h>

namespace deepspeed::zero {

/// What a unit calls into when ZeRO-3 is active (implemented by the engine's stage-3 parameter manager).
class UnitRuntime {
 public:
  virtual ~UnitRuntime() = default;
  /// Makes unit `id`'s parameters whole (waiting for a prefetch if one is in flight).
  virtual void before_forward(std::size_t id) = 0;
  /// Registers re-gathering for backward on the outputs, releases the parameters, prefetches the next unit.
  virtual void after_forward(std::size_t id, std::vector<at::Tensor>& outputs) = 0;
};

class Unit {
 public:
  Unit() = default;
  /// `module` is a module holder (Block) or std::shared_ptr to a module with a forward().
  /// Also records the unit so that initialize() finds it (the handles live inside user types).
  template <typename M>
  explicit Unit(M module) : state_(std::make_shared<State>()) {
    if constexpr (requires { module.ptr(); }) state_->module = module.ptr();
    else state_->module = module;
    state_->any = torch::nn::AnyModule(module);
    record(state_);
    if (construction_hook()) construction_hook()(state_->module);
  }

  /// Calls the module's forward with ZeRO-3 parameter handling around it. R: the forward's return type
  /// (at::Tensor, or std::vector<at::Tensor>).
  template <typename R = at::Tensor, typename... Args>
  R operator()(Args&&... args) {
    if (!state_->runtime) return state_->any.template forward<R>(std::forward<Args>(args)...);
    state_->runtime->before_forward(state_->id);
    R out = state_->any.template forward<R>(std::forward<Args>(args)...);
    if constexpr (std::is_same_v<R, at::Tensor>) {
      std::vector<at::Tensor> outs{out};
      state_->runtime->after_forward(state_->id, outs);
      return outs[0];
    } else {
      state_->runtime->after_forward(state_->id, out);
      return out;
    }
  }

  /// A unit over a type-erased module (used to wrap the children of a Sequential).
  explicit Unit(torch::nn::AnyModule any) : state_(std::make_shared<State>()) {
    state_->module = any.ptr();
    state_->any = std::move(any);
    record(state_);
  }

  const std::shared_ptr<torch::nn::Module>& module() const { return state_->module; }
  /// Set by the engine at initialize() (stage 3); null otherwise.
  void bind(UnitRuntime* runtime, std::size_t id) const {
    state_->runtime = runtime;
    state_->id = id;
  }
  bool bound() const { return state_ && state_->runtime; }

  /// The units constructed so far whose module lies inside `model`, in construction order (what
  /// initialize() uses); they are removed from the record.
  static std::vector<Unit> claim(const torch::nn::Module& model);

  /// Called with each new unit's module (zero::Init partitions it there); null when no Init is alive.
  static std::function<void(const std::shared_ptr<torch::nn::Module>&)>& construction_hook();

 private:
  struct State {
    std::shared_ptr<torch::nn::Module> module;
    torch::nn::AnyModule any;
    UnitRuntime* runtime = nullptr;
    std::size_t id = 0;
  };
  explicit Unit(std::shared_ptr<State> state) : state_(std::move(state)) {}
  static void record(const std::shared_ptr<State>& state);
  std::shared_ptr<State> state_;
};

/// One unit per element of `list`, in order. M: the elements' module type (BlockImpl for a ModuleList of
/// Block); throws c10::Error if an element is not an M. Same effect as a Unit per element.
template <typename M>
std::vector<Unit> units_of(const torch::nn::ModuleList& list) {
  std::vector<Unit> units;
  units.reserve(list->size());
  for (std::size_t i = 0; i < list->size(); ++i) units.emplace_back(list->ptr<M>(i));
  return units;
}

}  // namespace deepspeed::zero
