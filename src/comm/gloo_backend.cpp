#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>

#include "deepspeed/comm/dist_env.h"
#include "src/comm/backends.h"

namespace deepspeed::comm {

c10::intrusive_ptr<c10d::Backend> make_gloo_backend(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                                    std::chrono::milliseconds timeout) {
  auto options = c10d::ProcessGroupGloo::Options::create(timeout);
  // Loopback unless the job spans hosts: GLOO_SOCKET_IFNAME picks an interface, as in PyTorch.
  const auto env = process_env();
  if (const auto ifname = env("GLOO_SOCKET_IFNAME")) {
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(*ifname));
  } else {
    const auto addr = env("MASTER_ADDR").value_or("127.0.0.1");
    const bool local = addr == "127.0.0.1" || addr == "localhost";
    options->devices.push_back(local ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                     : c10d::ProcessGroupGloo::createDefaultDevice());
  }
  options->threads = 2;
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, options);
}

}  // namespace deepspeed::comm
