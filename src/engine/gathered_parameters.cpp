#include "deepspeed/engine/gathered_parameters.h"

#include <algorithm>
#include <exception>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "src/engine/engine_impl.h"

namespace deepspeed {

GatheredParameters::GatheredParameters(const Engine& engine, std::vector<at::Tensor> params,
                                       std::optional<int> modifier_rank)
    : engine_(engine), params_(std::move(params)), modifier_rank_(modifier_rank) {
  auto* partitioned = engine_.impl().partitioned.get();
  if (!partitioned) return;
  for (const auto& p : params_) {
    if (auto u = partitioned->unit_of(p)) units_.push_back(*u);
  }
  // Same order on every rank: gathers are collectives.
  std::sort(units_.begin(), units_.end());
  units_.erase(std::unique(units_.begin(), units_.end()), units_.end());
  for (auto u : units_) partitioned->gather(u);
}

GatheredParameters::~GatheredParameters() noexcept(false) {
  EngineImpl& e = engine_.impl();
  if (modifier_rank_) {
    at::NoGradGuard no_grad;
    for (auto& p : params_) e.comm->broadcast(p, *modifier_rank_).wait();
    if (e.partitioned) {
      for (auto u : units_) e.partitioned->update_shards_from_full(u);
    }
    if (e.master) e.master->refresh_from_model();
  }
  if (e.partitioned) {
    for (auto u : units_) e.partitioned->release(u);
  }
}

}  // namespace deepspeed
