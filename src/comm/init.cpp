// Rendezvous and process-group creation. The Gloo and NCCL constructors live in their own files so that
// only those translation units need the gloo / NCCL headers.
#include <cstdlib>
#include <mutex>

#include <ATen/Context.h>
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "deepspeed/comm/communicator.h"
#include "deepspeed/util/error.h"
#include "deepspeed/util/logging.h"
#include "src/comm/backends.h"

namespace deepspeed::comm {

using util::cat;

namespace {

std::mutex g_mutex;
std::shared_ptr<Communicator> g_current;

bool want_gpu(const EnvLookup& env) {
  const auto accel = env("DS_ACCELERATOR");
  if (accel && *accel == "cpu") return false;
  return cuda_device_count() > 0;
}

}  // namespace

DistEnv job_layout(int distributed_port) {
  const DistEnv dist = resolve_dist_env(process_env(), distributed_port);
  log::set_rank(dist.rank);
  set_error_rank(dist.world_size > 1 ? dist.rank : -1);
  return dist;
}

std::shared_ptr<Communicator> init_distributed(const InitOptions& options) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_current) return g_current;
  const EnvLookup env = process_env();
  const DistEnv dist = job_layout(options.distributed_port);
  const auto timeout = options.timeout.value_or(collective_timeout(env));
  BackendKind kind = options.backend.value_or(want_gpu(env) ? BackendKind::kNccl : BackendKind::kGloo);

  c10::Device device(c10::kCPU);
  if (kind == BackendKind::kNccl) {
    const int gpus = cuda_device_count();
    if (dist.local_rank >= gpus) {
      throw UsageError(cat("LOCAL_RANK ", dist.local_rank, " has no GPU: this node shows ", gpus,
                           " (check CUDA_VISIBLE_DEVICES and --num_gpus)"));
    }
    device = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(dist.local_rank));
    set_cuda_device(dist.local_rank);
  }

  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
  if (dist.world_size > 1) {
    c10d::TCPStoreOptions store_options;
    store_options.port = static_cast<std::uint16_t>(dist.master_port);
    store_options.isServer = dist.rank == 0;
    store_options.numWorkers = dist.world_size;
    store_options.waitWorkers = true;
    store_options.timeout = timeout;
    try {
      store = c10::make_intrusive<c10d::TCPStore>(dist.master_addr, store_options);
    } catch (const std::exception& e) {
      throw JobError(cat("rendezvous at ", dist.master_addr, ":", dist.master_port, " failed on rank ", dist.rank,
                         " of ", dist.world_size, ": ", describe(e)));
    }
    backend = kind == BackendKind::kNccl ? make_nccl_backend(store, dist.rank, dist.world_size, timeout)
                                         : make_gloo_backend(store, dist.rank, dist.world_size, timeout);
  } else {
    kind = kind == BackendKind::kNccl ? BackendKind::kNccl : BackendKind::kNone;
  }
  g_current = std::make_shared<Communicator>(dist, kind, timeout, store, backend, device);
  // Registered after CUDA and NCCL are initialised, so it runs before their own exit handlers: NCCL's
  // communicators must be destroyed while the CUDA driver is still loaded.
  static const bool registered = [] { return std::atexit(destroy_process_group) == 0; }();
  (void)registered;
  return g_current;
}

void destroy_process_group() {
  std::shared_ptr<Communicator> current;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    current = g_current;
  }
  if (current) current->shutdown();
}

std::shared_ptr<Communicator> current_communicator() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_current;
}

}  // namespace deepspeed::comm
