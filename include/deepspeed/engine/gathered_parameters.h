#pragma once
/// \file
/// DeepSpeed's zero.GatheredParameters: full parameters outside forward under ZeRO-3.
///
///   {
///     deepspeed::GatheredParameters whole(engine, {model->fc->weight}, /*modifier_rank=*/0);
///     if (engine.global_rank() == 0) model->fc->weight.normal_();   // an edit, made on rank 0
///   }  // rank 0's values are broadcast and written into every rank's shards and fp32 master weights
///
/// Collective: every rank must create and destroy it together, with the same parameters. Without ZeRO-3 the
/// parameters are always whole and it only applies the modifier broadcast.

#include <optional>
#include <vector>

#include <ATen/core/Tensor.h>

#include "deepspeed/engine/engine.h"

namespace deepspeed {

class GatheredParameters {
 public:
  GatheredParameters(const Engine& engine, std::vector<at::Tensor> params, std::optional<int> modifier_rank = std::nullopt);
  ~GatheredParameters() noexcept(false);
  GatheredParameters(const GatheredParameters&) = delete;
  GatheredParameters& operator=(const GatheredParameters&) = delete;

 private:
  Engine engine_;
  std::vector<at::Tensor> params_;
  std::optional<int> modifier_rank_;
  std::vector<std::size_t> units_;
};

}  // namespace deepspeed
