#include "deepspeed/precision/master_params.h"

#include <map>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

namespace deepspeed::precision {

MasterParams::MasterParams(std::vector<zero::FlatGroup*> groups, int stage, std::shared_ptr<comm::Communicator> comm,
                           zero::PartitionedParams* partitioned)
    : groups_(std::move(groups)), stage_(stage), comm_(std::move(comm)), partitioned_(partitioned) {
  at::NoGradGuard no_grad;
  for (auto* g : groups_) {
    if (g->param_flat.scalar_type() != at::kFloat || stage_ > 0) copies_ = true;
  }
  if (!copies_) return;
  for (auto* g : groups_) {
    const auto fp32 = g->param_flat.options().dtype(at::kFloat);
    if (stage_ == 0) {
      master_.push_back(g->param_flat.to(fp32, /*non_blocking=*/false, /*copy=*/true));
      std::vector<at::Tensor> views;
      for (std::size_t i = 0; i < g->params.size(); ++i) views.push_back(g->view_of(master_.back(), i));
      master_views_.push_back(std::move(views));
    } else if (stage_ == 3) {
      master_.push_back(g->param_shard.to(fp32, /*non_blocking=*/false, /*copy=*/true));
    } else {
      at::Tensor shard = at::empty({g->plan.shard_numel}, fp32);
      for (std::size_t b = 0; b < g->plan.buckets.size(); ++b) {
        g->chunk_in_shard(shard, b).copy_(g->chunk_in_full(g->param_flat, b, comm_->rank()));
      }
      master_.push_back(shard);
    }
  }
}

std::vector<std::pair<std::size_t, std::size_t>> MasterParams::shard_slots() const {
  std::vector<std::pair<std::size_t, std::size_t>> slots;
  std::map<std::size_t, std::size_t> used;
  for (auto* g : groups_) slots.emplace_back(g->optimizer_group, used[g->optimizer_group]++);
  return slots;
}

void MasterParams::refresh_from_model() {
  at::NoGradGuard no_grad;
  for (std::size_t g = 0; g < master_.size(); ++g) {
    auto* group = groups_[g];
    if (stage_ == 0) {
      master_[g].copy_(group->param_flat);
    } else if (stage_ == 3) {
      master_[g].copy_(group->param_shard);
    } else {
      for (std::size_t b = 0; b < group->plan.buckets.size(); ++b) {
        group->chunk_in_shard(master_[g], b).copy_(group->chunk_in_full(group->param_flat, b, comm_->rank()));
      }
    }
  }
}

std::vector<std::vector<at::Tensor>> MasterParams::optimizer_params(std::size_t num_optimizer_groups) const {
  std::vector<std::vector<at::Tensor>> out(num_optimizer_groups);
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    auto& dest = out.at(groups_[g]->optimizer_group);
    if (!copies_) {
      dest.insert(dest.end(), groups_[g]->params.begin(), groups_[g]->params.end());
    } else if (stage_ == 0) {
      dest.insert(dest.end(), master_views_[g].begin(), master_views_[g].end());
    } else {
      dest.push_back(master_[g]);
    }
  }
  return out;
}

std::vector<at::Tensor> MasterParams::attach_gradients(const std::vector<at::Tensor>& reduced) {
  if (!copies_) return reduced;  // the optimizer reads the model parameters' own .grad()
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> grads;
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    // Reducers that accumulate in 16 bits hand over a 16-bit buffer; the optimizer needs fp32 (a transient
    // copy, as DeepSpeed's fp16 optimizers make at step time).
    at::Tensor grad = reduced.at(g).scalar_type() == at::kFloat ? reduced[g] : reduced[g].to(at::kFloat);
    grads.push_back(grad);
    if (stage_ == 0) {
      for (std::size_t i = 0; i < master_views_[g].size(); ++i) {
        master_views_[g][i].mutable_grad() = groups_[g]->view_of(grad, i);
      }
    } else {
      master_[g].mutable_grad() = grad;
    }
  }
  return grads;
}

void MasterParams::release_gradients() {
  for (auto& views : master_views_) {
    for (auto& v : views) v.mutable_grad().reset();
  }
  if (stage_ > 0) {
    for (auto& m : master_) m.mutable_grad().reset();
  }
}

void MasterParams::write_back() {
  if (!copies_) return;
  at::NoGradGuard no_grad;
  if (stage_ == 0) {
    for (std::size_t g = 0; g < groups_.size(); ++g) groups_[g]->param_flat.copy_(master_[g]);
    return;
  }
  if (stage_ == 3) {
    for (std::size_t g = 0; g < groups_.size(); ++g) groups_[g]->param_shard.copy_(master_[g]);
    if (partitioned_) partitioned_->invalidate();
    return;
  }
  // Each rank refreshes its own chunk of every bucket, then every bucket is all-gathered (all in flight at
  // once; a rank's input is a copy because Gloo does not accept an input aliasing the output).
  std::vector<comm::Work> works;
  std::vector<at::Tensor> inputs;
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    auto* group = groups_[g];
    for (std::size_t b = 0; b < group->plan.buckets.size(); ++b) {
      at::Tensor input = group->chunk_in_shard(master_[g], b).to(group->param_flat.scalar_type(), false, true);
      at::Tensor output = group->bucket(group->param_flat, b);
      inputs.push_back(input);
      works.push_back(comm_->all_gather(output, inputs.back()));
    }
  }
  for (auto& w : works) w.wait();
}

}  // namespace deepspeed::precision
