#include "deepspeed/zero/master_weights.h"

#include <algorithm>
#include <stdexcept>

#include <ATen/ATen.h>
#include <c10/core/impl/VirtualGuardImpl.h>
#include <c10/core/GradMode.h>

namespace deepspeed::zero {

MasterWeights::MasterWeights(std::vector<FlatGroup*> groups, std::vector<ShardBuffer> masters, View view)
    : groups_(std::move(groups)), masters_(std::move(masters)), view_(view) {
  if (view_ != View::kPerParameter) return;
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    if (masters_[g].pieces().size() != 1) throw std::logic_error("MasterWeights: per-parameter views need one piece");
    std::vector<at::Tensor> views;
    for (std::size_t i = 0; i < groups_[g]->params.size(); ++i) {
      views.push_back(groups_[g]->view_of(masters_[g].pieces()[0].tensor, i));
    }
    views_.push_back(std::move(views));
  }
}

std::vector<std::vector<at::Tensor>> MasterWeights::optimizer_params(std::size_t num_optimizer_groups) const {
  std::vector<std::vector<at::Tensor>> out(num_optimizer_groups);
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    auto& dest = out.at(groups_[g]->optimizer_group);
    if (view_ == View::kPerParameter) {
      dest.insert(dest.end(), views_[g].begin(), views_[g].end());
    } else {
      for (const auto& piece : masters_[g].pieces()) dest.push_back(piece.tensor);
    }
  }
  return out;
}

std::vector<std::vector<std::size_t>> MasterWeights::optimizer_positions() const {
  std::vector<std::size_t> next;  // per optimizer group: its next tensor's position
  std::vector<std::vector<std::size_t>> positions;
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    const std::size_t og = groups_[g]->optimizer_group;
    if (next.size() <= og) next.resize(og + 1, 0);
    std::vector<std::size_t> pieces;
    for (std::size_t p = 0; p < masters_[g].pieces().size(); ++p) pieces.push_back(next[og]++);
    positions.push_back(std::move(pieces));
  }
  return positions;
}

std::vector<std::vector<std::size_t>> MasterWeights::optimizer_indices() const {
  auto indices = optimizer_positions();
  std::vector<std::size_t> count;  // tensors per optimizer group
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    const std::size_t og = groups_[g]->optimizer_group;
    if (count.size() <= og) count.resize(og + 1, 0);
    count[og] += masters_[g].pieces().size();
  }
  std::vector<std::size_t> first(count.size(), 0);  // each optimizer group's first tensor among all
  for (std::size_t og = 1; og < count.size(); ++og) first[og] = first[og - 1] + count[og - 1];
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    for (auto& index : indices[g]) index += first[groups_[g]->optimizer_group];
  }
  return indices;
}

std::vector<at::Tensor> MasterWeights::attach_gradients(const std::vector<ShardBuffer>& reduced, SixteenBitGradients taken) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> grads;
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    const auto& pieces = masters_[g].pieces();
    for (std::size_t p = 0; p < pieces.size(); ++p) {
      const at::Tensor& master = pieces[p].tensor;
      const auto& piece = reduced.at(g).pieces().at(p);
      const at::Tensor& r = piece.tensor;
      // Reducers that accumulate in 16 bits hand over a 16-bit buffer; an optimizer that cannot up-cast it
      // needs fp32 beside its masters (a transient copy, as DeepSpeed's fp16 optimizers make at step time).
      const bool sixteen_taken = piece.host ? taken.host_16bit : taken.device_16bit;
      const bool as_is = r.device() == master.device() && (r.scalar_type() == at::kFloat || sixteen_taken);
      at::Tensor grad = as_is ? r : r.to(master.device(), at::kFloat);
      grads.push_back(grad);
      if (view_ == View::kPerParameter) {
        for (std::size_t i = 0; i < views_[g].size(); ++i) views_[g][i].mutable_grad() = groups_[g]->view_of(grad, i);
      } else {
        at::Tensor(master).mutable_grad() = grad;
      }
    }
  }
  return grads;
}

std::vector<at::Tensor> MasterWeights::attach_parameter_gradients(
    const std::vector<std::vector<at::Tensor>>& per_parameter, SixteenBitGradients taken) {
  if (view_ != View::kPerParameter || per_parameter.size() != views_.size()) {
    throw std::logic_error("attach_parameter_gradients: needs per-parameter masters and one list per group");
  }
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> grads;
  for (std::size_t g = 0; g < views_.size(); ++g) {
    if (per_parameter[g].size() != views_[g].size()) throw std::logic_error("attach_parameter_gradients: a group's size differs");
    for (std::size_t i = 0; i < views_[g].size(); ++i) {
      const at::Tensor& master = views_[g][i];
      const at::Tensor& r = per_parameter[g][i];
      const bool as_is = r.device() == master.device() && (r.scalar_type() == at::kFloat || taken.device_16bit);
      at::Tensor grad = (as_is ? r : r.to(master.device(), at::kFloat)).view(master.sizes());
      if (as_is && grad.is_cuda()) {
        // Autograd may have made it on another stream than the update reads it on: its memory must not go back
        // to that stream's pool, when the gradient is dropped, before the update queued here has read it.
        const c10::impl::VirtualGuardImpl guard(grad.device().type());
        grad.record_stream(guard.getStream(grad.device()));
      }
      grads.push_back(grad);
      views_[g][i].mutable_grad() = grad;
    }
  }
  return grads;
}

void MasterWeights::release_gradients() {
  for (auto& views : views_) {
    for (auto& v : views) v.mutable_grad().reset();
  }
  for (const auto& m : masters_) {
    for (const auto& piece : m.pieces()) at::Tensor(piece.tensor).mutable_grad().reset();
  }
}

}  // namespace deepspeed::zero
