// BucketReducer's gradient buffers and what its consumer reads: the full buffer (allocated on first use), the
// gradients kept as autograd made them (one rank, a window of one backward), the shards; zeroing between windows.
#include "deepspeed/zero/grad_reducer.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "src/zero/grad_convert.h"
#include "src/zero/grad_reducer_state.h"

namespace deepspeed::zero {

void BucketReducer::zero_grad() {
  attach_gradient_views();
  backwards_in_window_ = 0;
  for (auto& s : state_) {
    // A 16-bit model's gradients are copied in on their first arrival (or zeroed at launch): zeroing the whole
    // buffer here, then adding to it, would cost two more passes over it per step.
    if (s->full.defined() && s->grads_are_views) s->full.zero_();
    std::fill(s->written.begin(), s->written.end(), 0);
    for (auto& t : s->kept) t = at::Tensor();
    std::fill(s->fresh.begin(), s->fresh.end(), 1);  // host chunks are overwritten by their next landing
    if (s->window.defined()) s->window.zero_();
    // ZeRO-1 frees its shard between windows to hold 4Ψ + 12Ψ/N. Offloaded, the shard is mostly pinned host
    // memory, which is slow to allocate and costs the device nothing: it stays (every chunk is overwritten).
    if (options_.reduction == Reduction::kReduceScatterOnBoundary && !placement_.offloads()) {
      s->shard = ShardBuffer();
    } else if (s->shard.defined()) {
      for (const auto& piece : s->shard.pieces()) {
        if (!piece.host) piece.tensor.zero_();
      }
    }
  }
}

std::vector<at::Tensor> BucketReducer::gradients() {
  std::vector<at::Tensor> out;
  for (std::size_t g = 0; g < state_.size(); ++g) {
    auto& s = *state_[g];
    if (!sharded()) {
      for (std::size_t i = 0; i < s.kept.size(); ++i) {
        if (s.kept[i].defined()) fold_kept_gradient(g, i);  // asked for the flat buffer after all
      }
      out.push_back(full(g));
    } else {
      for (const auto& piece : s.shard.pieces()) out.push_back(piece.tensor);
    }
  }
  return out;
}

std::vector<std::vector<at::Tensor>> BucketReducer::gradients_as_they_are() {
  if (!as_they_are_) return {};
  std::vector<std::vector<at::Tensor>> out(groups_.size());
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    auto& s = *state_[g];
    for (std::size_t i = 0; i < s.kept.size(); ++i) {
      out[g].push_back(s.kept[i].defined() ? s.kept[i] : groups_[g]->view_of(full(g), i));
    }
  }
  return out;
}

at::Tensor& BucketReducer::full(std::size_t g) {
  auto& s = *state_[g];
  if (!s.full.defined()) {
    const FlatGroup& group = *groups_[g];
    s.full = at::zeros({group.plan.total_numel}, group.param_flat.options().dtype(options_.accum_dtype));
  }
  return s.full;
}

void BucketReducer::fold_kept_gradient(std::size_t g, std::size_t i) {
  auto& s = *state_[g];
  at::NoGradGuard no_grad;
  hand_over_gradient(groups_[g]->view_of(full(g), i), s.kept[i], /*accumulate=*/s.written[i] != 0);
  s.written[i] = 1;
  s.kept[i] = at::Tensor();
}

std::vector<ShardBuffer> BucketReducer::shards() const {
  std::vector<ShardBuffer> out;
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    out.push_back(sharded() ? state_[g]->shard : ShardBuffer::whole(*groups_[g], state_[g]->full));
  }
  return out;
}

}  // namespace deepspeed::zero
