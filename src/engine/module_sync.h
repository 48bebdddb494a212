#pragma once
// Internal: make every rank start from rank 0's weights (DeepSpeed broadcasts all parameters at init).
#include <torch/nn/module.h>

#include "deepspeed/comm/communicator.h"

namespace deepspeed {

/// Broadcasts all parameters and buffers of `module` from rank 0, coalesced per dtype. Collective.
void broadcast_module_state(torch::nn::Module& module, comm::Communicator& comm);

}  // namespace deepspeed
