#include "tests/support/loopback_ranks.h"

#include <cstdlib>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <torch/csrc/distributed/c10d/HashStore.hpp>

#include "deepspeed/util/error.h"
#include "src/comm/backends.h"

namespace deepspeed::testing {

void run_ranks(int world_size, const std::function<void(const std::shared_ptr<comm::Communicator>& comm)>& body, int timeout_seconds) {
  // c10d's flight recorder is one per process and registers each process group outside its lock
  // (FlightRecorder::recordWithResetEnabled in LibTorch 2.11): several groups recording from several threads
  // corrupt its map. Jobs have one group per process; here it is turned off before the first group exists.
  ::setenv("TORCH_FR_BUFFER_SIZE", "0", /*overwrite=*/1);
  auto store = c10::make_intrusive<c10d::HashStore>();
  const std::chrono::milliseconds timeout(timeout_seconds * 1000);
  std::mutex mutex;
  std::vector<std::string> errors;
  std::vector<std::thread> threads;
  for (int rank = 0; rank < world_size; ++rank) {
    threads.emplace_back([&, rank] {
      try {
        comm::DistEnv env;
        env.rank = env.local_rank = rank;
        env.world_size = env.local_size = world_size;
        env.source = "test threads";
        auto backend = comm::make_gloo_backend(store, rank, world_size, timeout);
        auto communicator = std::make_shared<comm::Communicator>(env, comm::BackendKind::kGloo, timeout, store, backend,
                                                                 c10::Device(c10::kCPU));
        body(communicator);
        communicator->shutdown();
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lock(mutex);
        errors.push_back("rank " + std::to_string(rank) + ": " + describe(e));
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& e : errors) ADD_FAILURE() << e;
}

}  // namespace deepspeed::testing
