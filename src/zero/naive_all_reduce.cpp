// The reference reducer (DS_REFERENCE_REDUCER=1): one blocking all-reduce per parameter after backward, the
// plain data parallelism the bucketed, overlapped BucketReducer is tested against.
#include "deepspeed/zero/grad_reducer.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

namespace deepspeed::zero {

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
    comm::CallerScope caller("NaiveAllReduce");
    comm_->all_reduce(grad).wait();
    grad.mul_(avg.after);
  }
}

void NaiveAllReduce::zero_grad() {
  for (auto& p : params_) {
    if (p.grad().defined()) p.mutable_grad().zero_();
  }
}

std::vector<at::Tensor> NaiveAllReduce::gradients() {
  std::vector<at::Tensor> grads;
  for (auto& p : params_) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  return grads;
}

}  // namespace deepspeed::zero
