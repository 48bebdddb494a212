#include "deepspeed/zero/grad_allreduce.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <tuple>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

namespace deepspeed::zero {

Averaging Averaging::deepspeed(int world_size, bool prescale_gradients, double predivide_factor) {
  const double ws = world_size;
  // engine.allreduce_bucket: prescale divides by the world size up front; otherwise divide by the predivide
  // factor before the sum and by world_size/factor after it, which bounds fp16 overflow for large worlds.
  if (prescale_gradients) return {1.0 / ws, 1.0};
  return {1.0 / predivide_factor, predivide_factor == ws ? 1.0 : predivide_factor / ws};
}

struct BucketedAllReduce::FlatGroup {
  at::Tensor flat;
  std::vector<at::Tensor> params;
  std::vector<at::Tensor> views;
  BucketPlan plan;
  std::vector<int> pending;
  std::vector<char> counted;
  std::vector<comm::Work> works;
  std::vector<at::Tensor> comm_buffers;  // only when communicating in another dtype
  std::size_t launched = 0;
};

struct BucketedAllReduce::Shared {
  std::mutex mutex;
  BucketedAllReduce* owner = nullptr;
};

namespace {

struct ReadyHook : torch::autograd::PostAccumulateGradHook {
  ReadyHook(std::weak_ptr<void> shared, std::function<void()> notify) : shared(std::move(shared)), notify(std::move(notify)) {}
  void operator()(const torch::autograd::Variable&) override {
    if (auto alive = shared.lock()) notify();
  }
  std::weak_ptr<void> shared;
  std::function<void()> notify;
};

}  // namespace

BucketedAllReduce::BucketedAllReduce(std::vector<at::Tensor> params, std::shared_ptr<comm::Communicator> comm,
                                     ReducerOptions options)
    : comm_(std::move(comm)), options_(options),
      averaging_(Averaging::deepspeed(comm_->world_size(), options.prescale_gradients,
                                      options.gradient_predivide_factor)),
      shared_(std::make_shared<Shared>()) {
  shared_->owner = this;
  // One flat buffer per (device, dtype), in first-seen order so every rank builds the same layout.
  std::map<std::tuple<int, int, int>, std::size_t> group_of;
  for (auto& p : params) {
    const auto key = std::make_tuple(static_cast<int>(p.device().type()), static_cast<int>(p.device().index()),
                                     static_cast<int>(p.scalar_type()));
    auto [it, inserted] = group_of.emplace(key, groups_.size());
    if (inserted) groups_.push_back(std::make_unique<FlatGroup>());
    groups_[it->second]->params.push_back(p);
  }
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    auto& group = *groups_[g];
    std::vector<std::int64_t> numels;
    for (auto& p : group.params) numels.push_back(p.numel());
    std::vector<std::size_t> order(numels.size());
    std::iota(order.rbegin(), order.rend(), 0);  // reverse registration order ≈ backward order
    group.plan = plan_buckets(numels, order, options_.bucket_numel);
    group.flat = at::zeros({group.plan.total_numel}, group.params[0].options().requires_grad(false));
    for (std::size_t i = 0; i < group.params.size(); ++i) {
      group.views.push_back(group.flat.narrow(0, group.plan.offset[i], numels[i]).view(group.params[i].sizes()));
      auto weak = std::weak_ptr<void>(shared_);
      Shared* shared = shared_.get();
      torch::autograd::impl::set_post_acc_grad_hooks(
          group.params[i], std::make_unique<ReadyHook>(weak, [shared, g, i] {
            std::lock_guard<std::mutex> lock(shared->mutex);
            if (shared->owner) shared->owner->on_gradient_ready(g, i);
          }));
    }
    group.pending.assign(group.plan.buckets.size(), 0);
    group.counted.assign(group.params.size(), 0);
    group.works.resize(group.plan.buckets.size());
    group.comm_buffers.resize(group.plan.buckets.size());
  }
  attach_gradient_views();
}

BucketedAllReduce::~BucketedAllReduce() {
  {
    std::lock_guard<std::mutex> lock(shared_->mutex);
    shared_->owner = nullptr;
  }
  for (auto& group : groups_) {
    for (auto& p : group->params) torch::autograd::impl::set_post_acc_grad_hooks(p, nullptr);
  }
}

std::size_t BucketedAllReduce::num_buckets() const {
  std::size_t n = 0;
  for (const auto& g : groups_) n += g->plan.buckets.size();
  return n;
}

void BucketedAllReduce::attach_gradient_views() {
  // The user may have reset grads (module->zero_grad() sets them to None): put the views back, keeping any
  // values a foreign tensor held.
  at::NoGradGuard no_grad;
  for (auto& group : groups_) {
    for (std::size_t i = 0; i < group->params.size(); ++i) {
      auto& p = group->params[i];
      const auto& view = group->views[i];
      const auto& grad = p.grad();
      if (grad.defined() && grad.data_ptr() == view.data_ptr()) continue;
      if (grad.defined()) view.copy_(grad);
      else view.zero_();
      p.mutable_grad() = view;
    }
  }
}

void BucketedAllReduce::prepare_backward(bool reduce) {
  attach_gradient_views();
  std::lock_guard<std::mutex> lock(shared_->mutex);
  armed_ = reduce && comm_->world_size() > 1;
  next_group_ = next_bucket_ = 0;
  for (auto& group : groups_) {
    std::fill(group->counted.begin(), group->counted.end(), 0);
    for (std::size_t b = 0; b < group->plan.buckets.size(); ++b) {
      group->pending[b] = static_cast<int>(group->plan.buckets[b].members.size());
    }
    group->launched = 0;
  }
}

void BucketedAllReduce::on_gradient_ready(std::size_t g, std::size_t i) {
  if (!armed_) return;
  auto& group = *groups_[g];
  if (group.counted[i]) return;
  group.counted[i] = 1;
  --group.pending[group.plan.bucket_of[i]];
  launch_ready_buckets_locked();
}

void BucketedAllReduce::launch_ready_buckets_locked() {
  while (next_group_ < groups_.size()) {
    auto& group = *groups_[next_group_];
    if (next_bucket_ == group.plan.buckets.size()) {
      ++next_group_;
      next_bucket_ = 0;
      continue;
    }
    if (group.pending[next_bucket_] > 0) return;
    launch_bucket(group, next_bucket_++);
  }
}

void BucketedAllReduce::launch_bucket(FlatGroup& group, std::size_t b) {
  at::NoGradGuard no_grad;
  const auto& bucket = group.plan.buckets[b];
  at::Tensor view = group.flat.narrow(0, bucket.offset, bucket.numel);
  if (averaging_.before != 1.0) view.mul_(averaging_.before);
  if (options_.communication_dtype && *options_.communication_dtype != view.scalar_type()) {
    group.comm_buffers[b] = view.to(*options_.communication_dtype);
    group.works[b] = comm_->all_reduce(group.comm_buffers[b]);
  } else {
    group.works[b] = comm_->all_reduce(view);
  }
  ++group.launched;
}

void BucketedAllReduce::finish_backward() {
  {
    std::lock_guard<std::mutex> lock(shared_->mutex);
    if (!armed_) return;
    // Parameters that took no part in this backward still have (zero or accumulated) gradients to average.
    for (auto& group : groups_) std::fill(group->pending.begin(), group->pending.end(), 0);
    launch_ready_buckets_locked();
    armed_ = false;
  }
  at::NoGradGuard no_grad;
  for (auto& group : groups_) {
    for (std::size_t b = 0; b < group->plan.buckets.size(); ++b) {
      group->works[b].wait();
      const auto& bucket = group->plan.buckets[b];
      at::Tensor view = group->flat.narrow(0, bucket.offset, bucket.numel);
      if (group->comm_buffers[b].defined()) {
        view.copy_(group->comm_buffers[b]);
        group->comm_buffers[b] = at::Tensor();
      }
      if (averaging_.after != 1.0) view.mul_(averaging_.after);
    }
  }
}

void BucketedAllReduce::zero_grad() {
  attach_gradient_views();
  for (auto& group : groups_) group->flat.zero_();
}

std::vector<at::Tensor> BucketedAllReduce::gradient_tensors() {
  std::vector<at::Tensor> flats;
  for (auto& group : groups_) flats.push_back(group->flat);
  return flats;
}

NaiveAllReduce::NaiveAllReduce(std::vector<at::Tensor> params, std::shared_ptr<comm::Communicator> comm,
                               ReducerOptions options)
    : params_(std::move(params)), comm_(std::move(comm)), options_(options) {}

void NaiveAllReduce::finish_backward() {
  if (!armed_ || comm_->world_size() == 1) return;
  armed_ = false;
  at::NoGradGuard no_grad;
  const auto avg = Averaging::deepspeed(comm_->world_size(), options_.prescale_gradients,
                                        options_.gradient_predivide_factor);
  for (auto& p : params_) {
    // Every rank must issue the same collectives: a parameter unused here gets a zero gradient first.
    if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
    at::Tensor grad = p.grad();
    grad.mul_(avg.before);
    comm_->all_reduce(grad).wait();
    grad.mul_(avg.after);
  }
}

void NaiveAllReduce::zero_grad() {
  for (auto& p : params_) {
    if (p.grad().defined()) p.mutable_grad().zero_();
  }
}

std::vector<at::Tensor> NaiveAllReduce::gradient_tensors() {
  std::vector<at::Tensor> grads;
  for (auto& p : params_) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  return grads;
}

}  // namespace deepspeed::zero
