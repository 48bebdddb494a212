// partition_activations across a group of ranks that compute identical activations (the model-parallel case
// DeepSpeed partitions for): each rank keeps a shard of the saved input, the group all-gathers it in
// backward, and the gradients equal the plain computation's. Run through the launcher; exits 1 on a mismatch.
#include <cstdio>

#include <ATen/ATen.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/utils.h>

#include "deepspeed/comm/communicator.h"
#include "deepspeed/engine/activation_checkpointing.h"

namespace ckpt = deepspeed::checkpointing;

int main() {
  auto comm = deepspeed::comm::init_distributed();
  torch::manual_seed(0);  // the same weights and input on every rank
  torch::nn::Linear fc(7, 20), proj(20, 7);
  torch::nn::Dropout drop(0.2);
  const at::Tensor x0 = at::randn({3, 5, 7});  // 105 values: a partition with padding for 2 and 4 ranks
  auto block = [fc = fc.ptr(), proj = proj.ptr(), drop = drop.ptr()](const at::Tensor& x) {
    return x + proj->forward(drop->forward(at::gelu(fc->forward(x), "tanh")));
  };
  auto grads = [&](bool checkpointed) {
    fc->zero_grad();
    proj->zero_grad();
    at::Tensor x = x0.clone().requires_grad_(true);
    torch::manual_seed(11);
    at::Tensor h = checkpointed ? ckpt::checkpoint(block, x) : block(x);
    // A second checkpoint whose input is a non-leaf activation, as in a stack of layers.
    h = checkpointed ? ckpt::checkpoint(block, h) : block(h);
    (void)at::rand({3});
    h.pow(2).sum().backward();
    return std::vector<at::Tensor>{x.grad().clone(), fc->weight.grad().clone(), proj->bias.grad().clone()};
  };
  const auto plain = grads(false);
  deepspeed::config::ActivationCheckpointingConfig settings;
  settings.partition_activations = true;
  settings.cpu_checkpointing = true;
  ckpt::configure(settings, comm);
  const auto partitioned = grads(true);
  int bad = 0;
  for (std::size_t i = 0; i < plain.size(); ++i) bad += !at::allclose(plain[i], partitioned[i], 1e-6, 1e-7);
  std::printf("rank %d of %d: %s\n", comm->rank(), comm->world_size(), bad ? "gradients differ" : "gradients equal");
  return bad ? 1 : 0;
}
