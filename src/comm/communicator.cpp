#include "deepspeed/comm/communicator.h"

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>

#include <utility>

#include "deepspeed/util/error.h"
#include "deepspeed/util/strings.h"

namespace deepspeed::comm {

using util::cat;

namespace {

c10d::ReduceOp to_c10d(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return c10d::ReduceOp(c10d::ReduceOp::SUM);
    case ReduceOp::kMax: return c10d::ReduceOp(c10d::ReduceOp::MAX);
    case ReduceOp::kMin: return c10d::ReduceOp(c10d::ReduceOp::MIN);
  }
  return c10d::ReduceOp(c10d::ReduceOp::SUM);
}

std::int64_t bytes_of(const at::Tensor& t) {
  return static_cast<std::int64_t>(t.numel()) * static_cast<std::int64_t>(t.element_size());
}

std::string human_bytes(std::int64_t bytes) {
  if (bytes >= (1 << 20)) return cat(util::py_float(static_cast<double>(bytes * 10 / (1 << 20)) / 10), " MiB");
  if (bytes >= (1 << 10)) return cat(util::py_float(static_cast<double>(bytes * 10 / (1 << 10)) / 10), " KiB");
  return cat(bytes, " B");
}

}  // namespace

const char* backend_name(BackendKind kind) {
  switch (kind) {
    case BackendKind::kGloo: return "gloo";
    case BackendKind::kNccl: return "nccl";
    case BackendKind::kNone: return "none";
  }
  return "none";
}

Work::Work(c10::intrusive_ptr<c10d::Work> work, std::string description, int rank,
           std::function<void()> on_complete)
    : work_(std::move(work)), description_(std::move(description)), rank_(rank), on_complete_(std::move(on_complete)) {}
Work::~Work() = default;
Work::Work(Work&&) noexcept = default;
Work& Work::operator=(Work&&) noexcept = default;

void Work::wait() {
  if (!work_) return;
  auto work = std::move(work_);
  try {
    work->wait();
  } catch (const std::exception& e) {
    throw JobError(cat("collective ", description_, " failed on rank ", rank_, ": ", describe(e),
                       " (a peer rank probably stopped or diverged; see that rank's error)"));
  }
  if (on_complete_) std::exchange(on_complete_, {})();
}

Communicator::Communicator(DistEnv env, BackendKind kind, std::chrono::milliseconds timeout,
                           c10::intrusive_ptr<c10d::Store> store, c10::intrusive_ptr<c10d::Backend> backend,
                           c10::Device device)
    : env_(std::move(env)), kind_(kind), timeout_(timeout), store_(std::move(store)), backend_(std::move(backend)),
      device_(device) {}

Communicator::~Communicator() = default;

Work Communicator::launch(c10::intrusive_ptr<c10d::Work> work, const char* op, const at::Tensor& tensor,
                          std::int64_t bytes, Clock::time_point launched) {
  // One pointer test when the logger is off.
  std::function<void()> on_complete;
  if (logger_ && logger_->profiles(op)) {
    if (kind_ == BackendKind::kNccl) logger_->track(work, op, bytes);
    else on_complete = logger_->host_timed(op, bytes, launched);
  }
  return Work(std::move(work),
              cat(op, " #", ++sequence_, " (", human_bytes(bytes), " ", tensor.scalar_type(), ", ", backend_name(kind_),
                  ", timeout ", timeout_.count() / 1000.0, " s)"),
              env_.rank, std::move(on_complete));
}

void Communicator::set_logger(std::shared_ptr<CommsLogger> logger) {
  if (logger && backend_ && kind_ == BackendKind::kNccl) backend_->enableCollectivesTiming();
  logger_ = std::move(logger);
}

bool Communicator::local_only() const {
  if (shut_down_) throw JobError(cat("rank ", env_.rank, ": collective called after destroy_process_group()"));
  return !backend_;
}

void Communicator::shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  if (backend_) backend_->shutdown();
  backend_.reset();
  store_.reset();
}

Work Communicator::all_reduce(at::Tensor& tensor, ReduceOp op) {
  if (local_only()) return {};
  std::vector<at::Tensor> tensors{tensor};
  c10d::AllreduceOptions opts;
  opts.reduceOp = to_c10d(op);
  opts.timeout = timeout_;
  const auto launched = Clock::now();
  return launch(backend_->allreduce(tensors, opts), "all_reduce", tensor, bytes_of(tensor), launched);
}

Work Communicator::broadcast(at::Tensor& tensor, int root) {
  if (local_only()) return {};
  std::vector<at::Tensor> tensors{tensor};
  c10d::BroadcastOptions opts;
  opts.rootRank = root;
  opts.timeout = timeout_;
  const auto launched = Clock::now();
  return launch(backend_->broadcast(tensors, opts), "broadcast", tensor, bytes_of(tensor), launched);
}

Work Communicator::all_gather(at::Tensor& output, at::Tensor& input) {
  TORCH_CHECK(output.numel() == input.numel() * world_size(), "all_gather: output must hold world_size inputs");
  if (local_only()) {
    output.copy_(input.reshape(output.sizes()));
    return {};
  }
  c10d::AllgatherOptions opts;
  opts.timeout = timeout_;
  const auto launched = Clock::now();
  return launch(backend_->_allgather_base(output, input, opts), "all_gather_into_tensor", output, bytes_of(output),
                launched);
}

Work Communicator::reduce_scatter(at::Tensor& output, at::Tensor& input, ReduceOp op) {
  TORCH_CHECK(input.numel() == output.numel() * world_size(), "reduce_scatter: input must hold world_size outputs");
  if (local_only()) {
    output.copy_(input.reshape(output.sizes()));
    return {};
  }
  c10d::ReduceScatterOptions opts;
  opts.reduceOp = to_c10d(op);
  opts.timeout = timeout_;
  const auto launched = Clock::now();
  return launch(backend_->_reduce_scatter_base(output, input, opts), "reduce_scatter_tensor", input,
                bytes_of(input), launched);
}

void Communicator::barrier() {
  if (local_only()) return;
  // A one-element all-reduce instead of c10d's barrier: it honours our timeout and error wording. Reading the
  // result blocks the host: under NCCL, Work::wait() only orders the current stream, and a barrier that
  // returns before the peers arrive (e.g. before committing a checkpoint) is no barrier.
  at::Tensor t = at::zeros({1}, at::TensorOptions().device(device_));
  std::vector<at::Tensor> tensors{t};
  c10d::AllreduceOptions opts;
  opts.timeout = timeout_;
  const auto launched = Clock::now();
  launch(backend_->allreduce(tensors, opts), "barrier", t, 0, launched).wait();
  (void)t.item<float>();
}

double Communicator::all_reduce_scalar(double value, ReduceOp op) {
  if (local_only()) return value;
  at::Tensor t = at::full({1}, value, at::TensorOptions().dtype(at::kDouble).device(device_));
  all_reduce(t, op).wait();
  return t.item<double>();
}

}  // namespace deepspeed::comm
