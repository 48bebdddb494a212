#pragma once
/// \file
/// DeepSpeed's zero.Init: build a model too large for one rank by partitioning each ZeRO-3 unit as it is
/// constructed.
///
///   deepspeed::zero::Init init;      // collective: every rank, same model code
///   GPT model(config);               // each Unit made in here is partitioned on the spot
///   auto [engine, ...] = deepspeed::initialize(args, model, ...);   // needs zero_optimization.stage 3
///
/// While an Init is alive, constructing a Unit broadcasts its module's parameters from rank 0 (so every rank
/// starts from the same values whatever its RNG did), keeps this rank's 1/N of each parameter and frees the
/// full tensors: a rank never holds more than the unit being built in full. Parameters outside units are left
/// whole. initialize() later gathers each unit into its final layout, one unit at a time. Units must be
/// constructed in the same order on every rank.
///
/// With InitOptions::on_host (DeepSpeed's remote_device="cpu", for offload_param) the shards are kept in host
/// memory: the device then holds only the unit being broadcast, never the model's shards.

#include <optional>
#include <vector>

#include <ATen/core/Tensor.h>

namespace deepspeed::zero {

struct InitOptions {
  /// Keep this rank's shards in host memory instead of on the job's device.
  bool on_host = false;
  /// With on_host on a GPU: page-locked memory, so that the shards are copied up asynchronously later.
  bool pin_memory = false;
};

class Init {
 public:
  /// Sets up the process group (init_distributed) if needed. Nested Inits keep the outermost one's options.
  Init();
  explicit Init(InitOptions options);
  ~Init();
  Init(const Init&) = delete;
  Init& operator=(const Init&) = delete;

  /// Bytes of parameter shards this rank holds for units built under any Init (for tests and logs).
  static std::int64_t shard_bytes();
};

/// The element count `param` has whole: its own, or for a parameter an Init partitioned (numel 0 now) the
/// size it was built with.
std::int64_t full_numel(const at::Tensor& param);

/// For initialize(): if `params` were partitioned by an Init, gathers them whole again (on `device`, in
/// `dtype`); returns true if it did. Collective over the job's process group.
bool materialize_presharded(const std::vector<at::Tensor>& params, c10::Device device, at::ScalarType dtype);

}  // namespace deepspeed::zero
