#pragma once
/// \file
/// The job's process group: c10d's ProcessGroupNCCL when this rank has a GPU, ProcessGroupGloo otherwise,
/// rendezvous through a c10d TCPStore at MASTER_ADDR:MASTER_PORT.
///
/// Contract for every collective below: all ranks must call it, in the same order, with tensors of the same
/// shape and dtype. It is asynchronous: it returns a Work; Work::wait() makes the caller's current CUDA stream
/// wait for the result (NCCL) or blocks until it is done (Gloo). A collective that does not complete within the
/// timeout (env DEEPSPEED_TIMEOUT, minutes, default 30) raises JobError naming the collective, its size and this
/// rank — never a silent hang. With NCCL, PyTorch's watchdog enforces the same timeout and ends the process with
/// a message naming the rank and the collective (see docs/troubleshooting.md).
/// A world of one process has no process group; collectives complete immediately and leave tensors unchanged.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/util/intrusive_ptr.h>
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>

#include "deepspeed/comm/comms_logger.h"
#include "deepspeed/comm/dist_env.h"

namespace deepspeed::comm {

enum class BackendKind { kNone, kGloo, kNccl };
enum class ReduceOp { kSum, kMax, kMin };

const char* backend_name(BackendKind kind);

struct InitOptions {
  /// Default: NCCL when CUDA is available (and DS_ACCELERATOR is not "cpu"), Gloo otherwise.
  std::optional<BackendKind> backend;
  /// Default: env DEEPSPEED_TIMEOUT or 30 minutes.
  std::optional<std::chrono::milliseconds> timeout;
  /// MASTER_PORT when the environment has none (DeepSpeed's distributed_port).
  int distributed_port = 29500;
};

/// An outstanding collective.
class Work {
 public:
  Work() = default;
  /// `on_complete` (may be empty) runs once, after the first wait() that succeeds (the comms logger's timing).
  Work(c10::intrusive_ptr<c10d::Work> work, std::string description, int rank,
       std::function<void()> on_complete = {});
  ~Work();
  Work(Work&&) noexcept;
  Work& operator=(Work&&) noexcept;

  /// Waits for completion (see the file comment for stream semantics). Throws JobError on failure or timeout.
  /// Idempotent; a default-constructed Work is complete.
  void wait();

 private:
  c10::intrusive_ptr<c10d::Work> work_;
  std::string description_;
  int rank_ = 0;
  std::function<void()> on_complete_;
};

class Communicator {
 public:
  Communicator(DistEnv env, BackendKind kind, std::chrono::milliseconds timeout,
               c10::intrusive_ptr<c10d::Store> store, c10::intrusive_ptr<c10d::Backend> backend, c10::Device device);
  ~Communicator();

  const DistEnv& env() const { return env_; }
  int rank() const { return env_.rank; }
  int world_size() const { return env_.world_size; }
  int local_rank() const { return env_.local_rank; }
  BackendKind backend_kind() const { return kind_; }
  /// cuda:LOCAL_RANK under NCCL, cpu under Gloo.
  c10::Device device() const { return device_; }
  std::chrono::milliseconds timeout() const { return timeout_; }

  Work all_reduce(at::Tensor& tensor, ReduceOp op = ReduceOp::kSum);
  Work broadcast(at::Tensor& tensor, int root);
  /// output.numel() == world_size × input.numel(); rank r's input lands at [r·n, (r+1)·n).
  Work all_gather(at::Tensor& output, at::Tensor& input);
  /// input.numel() == world_size × output.numel(); rank r receives the reduction of [r·n, (r+1)·n).
  Work reduce_scatter(at::Tensor& output, at::Tensor& input, ReduceOp op = ReduceOp::kSum);
  /// Blocks the calling thread until every rank has reached it (also under NCCL).
  void barrier();

  /// Synchronous all-reduce of one number (flags, norms). Every rank must call it.
  double all_reduce_scalar(double value, ReduceOp op);

  /// The c10d store, for rendezvous-style exchanges (checkpoint tags).
  c10d::Store& store() { return *store_; }

  /// Records collectives in `logger` from now on (nullptr: stop). Under NCCL this turns on c10d's collective
  /// timing (CUDA events per collective). Call between collectives, from the thread that launches them.
  void set_logger(std::shared_ptr<CommsLogger> logger);
  const std::shared_ptr<CommsLogger>& logger() const { return logger_; }

  /// Shuts the process group down (NCCL communicators destroyed). Later collectives throw JobError.
  void shutdown();

 private:
  using Clock = std::chrono::steady_clock;
  /// `op`: DeepSpeed's name for it (the comms logger's record name); `bytes`: the whole buffer it moves.
  Work launch(c10::intrusive_ptr<c10d::Work> work, const char* op, const at::Tensor& tensor, std::int64_t bytes,
              Clock::time_point launched);
  /// True in a one-process world (collectives are identities); throws after shutdown().
  bool local_only() const;

  DistEnv env_;
  BackendKind kind_;
  std::chrono::milliseconds timeout_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::Backend> backend_;
  c10::Device device_;
  std::uint64_t sequence_ = 0;
  bool shut_down_ = false;
  std::shared_ptr<CommsLogger> logger_;
};

/// The job layout from the environment (dist_env.h), as init_distributed() reads it, with this process's log and
/// error lines tagged by its rank from here on. No communication: for what must come before the rendezvous
/// (initialize() reads the config with it). Throws UsageError for a bad environment.
DistEnv job_layout(int distributed_port = 29500);

/// Sets up the job's process group from the environment (dist_env.h). Collective: every rank calls it once,
/// before anything else that communicates. Rank 0 hosts the TCPStore. Also sets the CUDA device to LOCAL_RANK
/// under NCCL and tags log/error lines with the rank. A second call returns the same communicator.
/// Throws UsageError for a bad environment, JobError if the rendezvous times out.
std::shared_ptr<Communicator> init_distributed(const InitOptions& options = {});

/// The communicator made by init_distributed(), or nullptr.
std::shared_ptr<Communicator> current_communicator();

/// Shuts down the job's process group (PyTorch's destroy_process_group). Called automatically at exit —
/// before the CUDA runtime unloads, which NCCL's own teardown needs — so programs need not call it.
void destroy_process_group();

}  // namespace deepspeed::comm
