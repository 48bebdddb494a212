#pragma once
// Internal: the ZeRO-3 units of a model (include/deepspeed/zero/unit.h describes the three ways a model gets them).
#include <memory>
#include <vector>

#include <torch/nn/module.h>

#include "deepspeed/zero/unit.h"

namespace deepspeed::zero {

/// The units the model declared, else one per child of each outermost Sequential in the model (preorder, so
/// in registration order). Each such child in its Sequential's call list is re-pointed at a wrapper that runs
/// it as a unit; the registered submodules (names, parameters) stay as they were.
std::vector<Unit> find_units(const std::shared_ptr<torch::nn::Module>& module);

}  // namespace deepspeed::zero
