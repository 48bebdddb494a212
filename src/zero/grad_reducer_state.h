#pragma once
// Internal: BucketReducer's per-group state, shared by grad_reducer.cpp (hooks, launches, device chunks) and
// grad_landing.cpp (chunks that live on the host under offload).
#include <cstddef>
#include <optional>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Event.h>

#include "deepspeed/zero/grad_reducer.h"

namespace deepspeed::zero {

struct BucketReducer::GroupState {
  bool grads_are_views = false;
  at::Tensor full;      // kAllReduce, kReduceScatterOnBoundary: [total_numel] in accum dtype
  ShardBuffer shard;    // the reduce-scatters: this rank's chunks in accum dtype (host ones pinned)
  ShardBuffer landing;  // offload: pinned landing area of a host chunk's later micro-steps (accumulation)
  ShardBuffer window;   // offload accumulated on device: the host chunks' sum over the window's micro-steps
  std::vector<char> fresh;  // per bucket: its host chunk holds nothing of this window yet
  // full buffer of a 16-bit model: per parameter, its region holds this window's gradient (otherwise whatever
  // the last window left: the first gradient is copied in rather than added to a zeroed buffer)
  std::vector<char> written;
  // per parameter: its gradient as autograd made it, kept instead of converted into full (as_they_are_)
  std::vector<at::Tensor> kept;
  std::vector<std::optional<c10::Event>> launched_at;  // CUDA offload: the compute stream when bucket b launched
  std::vector<double> host_squared;  // offload, norms tracked: ‖host chunk b‖² of the boundary's gradient
  std::vector<int> pending;
  std::vector<char> counted;
  std::vector<comm::Work> works;
  std::vector<at::Tensor> input;   // per bucket: what was sent (a cast copy, or the staging buffer when reducing every micro-step)
  std::vector<at::Tensor> output;  // per bucket: reduce-scatter result, or the cast all-reduce buffer
  std::vector<char> launched;
  std::vector<std::int64_t> budgeted;  // offload: bytes of bucket b's send buffer counted in the landing budget
  std::size_t counted_total = 0;
};

}  // namespace deepspeed::zero
