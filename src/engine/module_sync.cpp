#include "src/engine/module_sync.h"

#include <map>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

namespace deepspeed {

void broadcast_module_state(torch::nn::Module& module, comm::Communicator& comm) {
  if (comm.world_size() == 1) return;
  at::NoGradGuard no_grad;
  // One flat broadcast per dtype instead of one per tensor: a model has hundreds of small tensors.
  std::map<at::ScalarType, std::vector<at::Tensor>> by_dtype;
  for (auto& p : module.parameters()) by_dtype[p.scalar_type()].push_back(p);
  for (auto& b : module.buffers()) by_dtype[b.scalar_type()].push_back(b);
  for (auto& [dtype, tensors] : by_dtype) {
    std::vector<at::Tensor> flat_parts;
    for (auto& t : tensors) flat_parts.push_back(t.detach().reshape(-1));
    at::Tensor flat = at::cat(flat_parts);
    comm::CallerScope caller("broadcast_module_state");
    comm.broadcast(flat, 0).wait();
    std::int64_t offset = 0;
    for (auto& t : tensors) {
      t.detach().copy_(flat.narrow(0, offset, t.numel()).view(t.sizes()));
      offset += t.numel();
    }
  }
}

}  // namespace deepspeed
