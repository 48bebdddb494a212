// zero::Init keeps no more than one unit whole while a model is built: after each unit is constructed the
// process holds only the shards so far (measured with glibc's allocator statistics, which count every thread's
// arena), and the model then trains.
#include <malloc.h>

#include <cstdio>

#include <ATen/ATen.h>
#include <torch/nn/modules/linear.h>

#include "deepspeed/deepspeed.h"
#include "deepspeed/engine/timers.h"
#include "deepspeed/zero/init.h"

namespace {

std::int64_t heap_bytes() {
  const auto info = mallinfo2();
  return static_cast<std::int64_t>(info.uordblks + info.hblkhd);
}

constexpr int kUnits = 8;
constexpr int kWidth = 512;  // one unit: 512 × 512 fp32 = 1 MiB

struct StackImpl : torch::nn::Module {
  StackImpl() {
    for (int i = 0; i < kUnits; ++i) {
      layers.push_back(register_module("l" + std::to_string(i),
                                       torch::nn::Linear(torch::nn::LinearOptions(kWidth, kWidth).bias(false))));
      units.emplace_back(layers.back());
      after_unit.push_back(heap_bytes());
    }
  }
  at::Tensor forward(at::Tensor x) {
    for (auto& u : units) x = at::tanh(u(x));
    return x;
  }
  std::vector<torch::nn::Linear> layers;
  std::vector<deepspeed::zero::Unit> units;
  std::vector<std::int64_t> after_unit;
};
TORCH_MODULE(Stack);

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"zero_init_memory"};
  bool on_host = false;
  app.add_flag("--on-host", on_host, "zero::Init keeps the shards in host memory; train with offload_param");
  auto ds_args = deepspeed::add_config_arguments(app);
  deepspeed::parse_arguments(app, argc, argv);
  auto comm = deepspeed::comm::init_distributed();
  const std::int64_t unit_bytes = std::int64_t{kWidth} * kWidth * 4;

  // Start the device and the communicator first: a CUDA context and NCCL's first collective take hundreds of
  // MB of host heap, which is not what is measured here.
  {
    at::Tensor warm = at::zeros({1}, comm->device());
    comm->broadcast(warm, 0).wait();
  }
  const std::int64_t before = heap_bytes();
  std::optional<Stack> model;
  {
    deepspeed::zero::Init init(deepspeed::zero::InitOptions{.on_host = on_host, .pin_memory = on_host});
    model.emplace();
  }
  // Each unit's full copy is freed as soon as its shard is cut (zero::Init frees the broadcast buffer itself, so
  // nothing depends on when the process group's threads drop their references): after unit i a rank holds
  // the shards of units 0..i and a little bookkeeping (~0.1 unit measured; the bound allows 1/4 unit), never a
  // unit whole, never the model.
  int failures = 0;
  for (int i = 0; i < kUnits; ++i) {
    const std::int64_t grown = (*model)->after_unit[static_cast<std::size_t>(i)] - before;
    const std::int64_t shards = (i + 1) * unit_bytes / comm->world_size();
    if (grown > shards + unit_bytes / 4) {
      std::fprintf(stderr, "rank %d: after unit %d the heap grew %lld bytes, shards are %lld\n", comm->rank(), i,
                   static_cast<long long>(grown), static_cast<long long>(shards));
      ++failures;
    }
  }
  if (deepspeed::zero::Init::shard_bytes() != kUnits * unit_bytes / comm->world_size()) {
    std::fprintf(stderr, "rank %d: shards hold %lld bytes\n", comm->rank(),
                 static_cast<long long>(deepspeed::zero::Init::shard_bytes()));
    ++failures;
  }
  // On a GPU the unit is built on the host and broadcast from the device: the device's peak during
  // construction is the shards plus the one unit in flight.
  const c10::Device device = comm->device();
  if (device.is_cuda() && on_host && deepspeed::engine::memory_allocated(device) > 4096) {
    // The shards went to the host: what the device holds after construction is the warm-up tensor alone.
    std::fprintf(stderr, "rank %d: the device holds %lld bytes after an on-host build\n", comm->rank(),
                 static_cast<long long>(deepspeed::engine::memory_allocated(device)));
    ++failures;
  }
  if (device.is_cuda()) {
    const std::int64_t peak = deepspeed::engine::max_memory_allocated(device);
    if (peak > kUnits * unit_bytes / comm->world_size() + unit_bytes + unit_bytes / 4) {
      std::fprintf(stderr, "rank %d: device peak %lld bytes while building\n", comm->rank(), static_cast<long long>(peak));
      ++failures;
    }
    std::printf("rank %d: device peak while building %lld bytes (shards %lld, one unit %lld)\n", comm->rank(),
                static_cast<long long>(peak), static_cast<long long>(kUnits * unit_bytes / comm->world_size()),
                static_cast<long long>(unit_bytes));
  }

  deepspeed::InitializeOptions options;
  options.config = deepspeed::config::Json{{"train_micro_batch_size_per_gpu", 4},
                                           {"zero_optimization", {{"stage", 3}, {"stage3_param_persistence_threshold", 0}}},
                                           {"optimizer", {{"type", "Adam"}, {"params", {{"lr", 1e-3}}}}}};
  if (on_host) {
    (*options.config)["zero_optimization"]["offload_param"] = {{"device", "cpu"}, {"pin_memory", true}};
    (*options.config)["zero_optimization"]["offload_optimizer"] = {{"device", "cpu"}, {"pin_memory", true}};
  }
  auto [engine, optimizer, loader, scheduler] =
      deepspeed::initialize(ds_args, *model, (*model)->parameters(), nullptr, options);
  const auto x = at::randn({4, kWidth}).to(engine.device());
  double first = 0, last = 0;
  for (int step = 0; step < 20; ++step) {
    auto loss = engine(x).pow(2).mean();
    (step == 0 ? first : last) = loss.item<double>();
    engine.backward(loss);
    engine.step();
  }
  if (!(last < first)) ++failures;
  std::printf("rank %d: %s (heap grew %lld bytes for %d units of %lld bytes; loss %.4f -> %.4f)\n", comm->rank(),
              failures ? "FAILED" : "zero::Init memory ok", static_cast<long long>((*model)->after_unit.back() - before),
              kUnits, static_cast<long long>(unit_bytes), first, last);
  return failures ? 1 : 0;
}
