#include "deepspeed/zero/master_weights.h"

#include <algorithm>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

namespace deepspeed::zero {

MasterWeights::MasterWeights(std::vector<FlatGroup*> groups, std::vector<at::Tensor> masters, View view)
    : groups_(std::move(groups)), masters_(std::move(masters)), view_(view) {
  if (view_ != View::kPerParameter) return;
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    std::vector<at::Tensor> views;
    for (std::size_t i = 0; i < groups_[g]->params.size(); ++i) views.push_back(groups_[g]->view_of(masters_[g], i));
    views_.push_back(std::move(views));
  }
}

std::vector<std::vector<at::Tensor>> MasterWeights::optimizer_params(std::size_t num_optimizer_groups) const {
  std::vector<std::vector<at::Tensor>> out(num_optimizer_groups);
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    auto& dest = out.at(groups_[g]->optimizer_group);
    if (view_ == View::kPerParameter) dest.insert(dest.end(), views_[g].begin(), views_[g].end());
    else dest.push_back(masters_[g]);
  }
  return out;
}

std::vector<std::size_t> MasterWeights::optimizer_indices() const {
  std::size_t num_optimizer_groups = 0;
  for (const auto* g : groups_) num_optimizer_groups = std::max(num_optimizer_groups, g->optimizer_group + 1);
  std::vector<std::size_t> per_group_count(num_optimizer_groups, 0);
  for (const auto* g : groups_) ++per_group_count[g->optimizer_group];
  std::vector<std::size_t> first(num_optimizer_groups, 0);  // index of each optimizer group's first tensor
  for (std::size_t og = 1; og < num_optimizer_groups; ++og) first[og] = first[og - 1] + per_group_count[og - 1];
  std::vector<std::size_t> indices;
  for (const auto* g : groups_) indices.push_back(first[g->optimizer_group]++);
  return indices;
}

std::vector<at::Tensor> MasterWeights::attach_gradients(const std::vector<at::Tensor>& reduced) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> grads;
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    // Reducers that accumulate in 16 bits hand over a 16-bit buffer; the optimizer needs fp32 beside its
    // masters (a transient copy, as DeepSpeed's fp16 optimizers make at step time).
    const at::Tensor& r = reduced.at(g);
    at::Tensor grad = r.scalar_type() == at::kFloat && r.device() == masters_[g].device()
                          ? r
                          : r.to(masters_[g].device(), at::kFloat);
    grads.push_back(grad);
    if (view_ == View::kPerParameter) {
      for (std::size_t i = 0; i < views_[g].size(); ++i) views_[g][i].mutable_grad() = groups_[g]->view_of(grad, i);
    } else {
      masters_[g].mutable_grad() = grad;
    }
  }
  return grads;
}

void MasterWeights::release_gradients() {
  for (auto& views : views_) {
    for (auto& v : views) v.mutable_grad().reset();
  }
  for (auto& m : masters_) m.mutable_grad().reset();
}

}  // namespace deepspeed::zero
