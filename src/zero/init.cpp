#include "deepspeed/zero/init.h"

#include <algorithm>
#include <map>
#include <mutex>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "deepspeed/comm/communicator.h"
#include "deepspeed/zero/host_memory.h"
#include "deepspeed/zero/unit.h"
#include "src/zero/storage.h"

namespace deepspeed::zero {

namespace {

struct Shard {
  at::Tensor chunk;                  // this rank's 1/N of the flattened parameter (zero-padded)
  std::vector<std::int64_t> shape;  // the full shape
};

std::mutex g_mutex;
std::map<const c10::TensorImpl*, Shard> g_shards;
int g_active = 0;
InitOptions g_options;  // the outermost active Init's

void partition_module(const std::shared_ptr<torch::nn::Module>& module) {
  auto comm = comm::init_distributed();
  const int ws = comm->world_size();
  at::NoGradGuard no_grad;
  for (auto& p : module->parameters()) {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (g_shards.count(p.unsafeGetTensorImpl()) || p.numel() == 0) continue;  // nested unit: done already
    // NCCL takes device tensors only: broadcast on the job's device; the shard stays there (1/N of the unit).
    at::Tensor full = p.detach().to(comm->device()).contiguous();
    comm::CallerScope caller("zero::Init");
    comm->broadcast(full, 0).wait();
    // Only this rank's chunk is copied out (zero-padded at the end): no second full-size buffer, so the peak
    // is one parameter plus its shard.
    const std::int64_t chunk = (full.numel() + ws - 1) / ws;
    const std::int64_t begin = std::min<std::int64_t>(comm->rank() * chunk, full.numel());
    const std::int64_t valid = std::min<std::int64_t>(chunk, full.numel() - begin);
    at::Tensor mine = g_options.on_host
                          ? host_empty(chunk, full.scalar_type(), g_options.pin_memory && full.is_cuda()).zero_()
                          : at::zeros({chunk}, full.options());
    if (valid > 0) mine.narrow(0, 0, valid).copy_(full.reshape(-1).narrow(0, begin, valid));
    g_shards[p.unsafeGetTensorImpl()] = Shard{mine, p.sizes().vec()};
    p.set_data(at::empty({0}, p.options()));
    // Free the full copy now, not when the last reference goes: the process group's worker thread may hold
    // the broadcast's tensors a while after wait() returns, and a unit built meanwhile would then find two
    // units whole (seen under load as a flaky memory bound).
    resize_storage(full, 0);
  }
}

}  // namespace

Init::Init() : Init(InitOptions{}) {}

Init::Init(InitOptions options) {
  comm::init_distributed();
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_active++ == 0) {
    g_options = options;
    Unit::construction_hook() = partition_module;
  }
}

Init::~Init() {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (--g_active == 0) Unit::construction_hook() = nullptr;
}

std::int64_t Init::shard_bytes() {
  std::lock_guard<std::mutex> lock(g_mutex);
  std::int64_t bytes = 0;
  for (const auto& [impl, shard] : g_shards) bytes += shard.chunk.numel() * static_cast<std::int64_t>(shard.chunk.element_size());
  return bytes;
}

std::int64_t full_numel(const at::Tensor& param) {
  std::lock_guard<std::mutex> lock(g_mutex);
  const auto it = g_shards.find(param.unsafeGetTensorImpl());
  if (it == g_shards.end()) return param.numel();
  return static_cast<std::int64_t>(c10::multiply_integers(it->second.shape));
}

bool materialize_presharded(const std::vector<at::Tensor>& params, c10::Device device, at::ScalarType dtype) {
  auto comm = comm::current_communicator();
  bool any = false;
  at::NoGradGuard no_grad;
  for (const auto& p : params) {
    Shard shard;
    {
      std::lock_guard<std::mutex> lock(g_mutex);
      auto it = g_shards.find(p.unsafeGetTensorImpl());
      if (it == g_shards.end()) continue;
      shard = std::move(it->second);
      g_shards.erase(it);
    }
    at::Tensor chunk = shard.chunk.to(device, dtype);
    at::Tensor gathered = at::empty({chunk.numel() * comm->world_size()}, chunk.options());
    comm::CallerScope caller("zero::Init");
    comm->all_gather(gathered, chunk).wait();
    const auto numel = static_cast<std::int64_t>(c10::multiply_integers(shard.shape));
    at::Tensor(p).set_data(gathered.narrow(0, 0, numel).view(shard.shape).clone());
    any = true;
  }
  return any;
}

}  // namespace deepspeed::zero
