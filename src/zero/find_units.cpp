#include "src/zero/find_units.h"

#include <set>

#include <torch/nn/modules/container/sequential.h>

namespace deepspeed::zero {

namespace {

// A forward-only module that runs a Unit: what the children of a model's Sequentials are replaced with.
struct UnitModuleImpl : torch::nn::Module {
  explicit UnitModuleImpl(Unit unit) : unit(std::move(unit)) {}
  at::Tensor forward(at::Tensor x) { return unit(x); }
  Unit unit;
};

}  // namespace

std::vector<Unit> find_units(const std::shared_ptr<torch::nn::Module>& module) {
  auto units = Unit::claim(*module);
  if (!units.empty()) return units;
  std::set<const torch::nn::Module*> inside_wrapped;
  for (const auto& m : module->modules(/*include_self=*/true)) {
    if (inside_wrapped.count(m.get())) continue;
    auto sequential = std::dynamic_pointer_cast<torch::nn::SequentialImpl>(m);
    if (!sequential) continue;
    for (const auto& d : sequential->modules(/*include_self=*/false)) inside_wrapped.insert(d.get());
    for (auto& child : *sequential) {
      Unit unit(child);
      units.push_back(unit);
      child = torch::nn::AnyModule(std::make_shared<UnitModuleImpl>(unit));
    }
  }
  Unit::claim(*module);  // the wrappers were recorded too; they are ours now
  return units;
}

}  // namespace deepspeed::zero
