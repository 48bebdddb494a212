#include "deepspeed/zero/unit.h"

#include <mutex>
#include <unordered_set>

namespace deepspeed::zero {

namespace {

std::mutex g_mutex;
std::vector<std::weak_ptr<void>> g_units;  // weak: a discarded model's units simply expire

}  // namespace

std::function<void(const std::shared_ptr<torch::nn::Module>&)>& Unit::construction_hook() {
  static std::function<void(const std::shared_ptr<torch::nn::Module>&)> hook;
  return hook;
}

void Unit::record(const std::shared_ptr<State>& state) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_units.push_back(std::static_pointer_cast<void>(state));
}

std::vector<Unit> Unit::claim(const torch::nn::Module& model) {
  std::unordered_set<const torch::nn::Module*> inside;
  inside.insert(&model);
  for (const auto& m : model.modules(/*include_self=*/false)) inside.insert(m.get());
  std::vector<Unit> claimed;
  std::lock_guard<std::mutex> lock(g_mutex);
  std::vector<std::weak_ptr<void>> kept;
  for (auto& weak : g_units) {
    auto alive = weak.lock();
    if (!alive) continue;
    auto state = std::static_pointer_cast<State>(alive);
    if (inside.count(state->module.get())) claimed.push_back(Unit(state));
    else kept.push_back(weak);
  }
  g_units = std::move(kept);
  return claimed;
}

}  // namespace deepspeed::zero
