#pragma once
// In-process ranks for component tests: N threads, each a rank of one Gloo process group over loopback, with an
// in-memory store for the rendezvous. What the ZeRO parts (reducer, master weights, strategies) need from a
// job, without the launcher, its processes and their timeouts.
#include <functional>
#include <memory>

#include "deepspeed/comm/communicator.h"

namespace deepspeed::testing {

/// Runs body(comm) on `world_size` threads at once, rank r's communicator on thread r, and joins them. A rank
/// that throws fails the test with its message (the others then fail their next collective within
/// `timeout_seconds` instead of hanging).
void run_ranks(int world_size, const std::function<void(const std::shared_ptr<comm::Communicator>& comm)>& body, int timeout_seconds = 60);

}  // namespace deepspeed::testing
