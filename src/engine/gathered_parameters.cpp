#include "deepspeed/engine/gathered_parameters.h"

#include <algorithm>

#include <c10/core/GradMode.h>

#include "src/engine/engine_impl.h"

namespace deepspeed {

GatheredParameters::GatheredParameters(const Engine& engine, std::vector<at::Tensor> params,
                                       std::optional<int> modifier_rank)
    : engine_(engine), params_(std::move(params)), modifier_rank_(modifier_rank) {
  zero::Strategy& zero = engine_.impl_->zero();
  for (const auto& p : params_) units_.push_back(zero.unit_of(p));
  // Same order on every rank: gathers are collectives.
  std::sort(units_.begin(), units_.end());
  units_.erase(std::unique(units_.begin(), units_.end()), units_.end());
  for (auto u : units_) zero.gather(u);
}

GatheredParameters::~GatheredParameters() noexcept(false) {
  EngineImpl& e = *engine_.impl_;
  if (modifier_rank_) {
    at::NoGradGuard no_grad;
    for (auto& p : params_) e.comm().broadcast(p, *modifier_rank_).wait();
    for (auto u : units_) e.zero().adopt_parameter_values(u);
  }
  for (auto u : units_) e.zero().release(u);
}

}  // namespace deepspeed
