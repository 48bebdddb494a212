// The stage-0 step behind the next forward (step_behind_forward.h).
#include "src/zero/step_behind_forward.h"

#include <stdexcept>
#include <string>

#include <ATen/core/Tensor.h>
#include <c10/core/impl/VirtualGuardImpl.h>

#include "deepspeed/util/error.h"

namespace deepspeed::zero {

StepParts plan_step_parts(const std::vector<std::vector<std::size_t>>& unit_of, std::size_t num_units) {
  StepParts out;
  out.unit_needs.assign(num_units + 1, 0);
  for (const auto& group : unit_of) {
    for (const std::size_t u : group) {
      if (u > num_units) {
        throw std::invalid_argument("plan_step_parts: unit " + std::to_string(u) + " of " + std::to_string(num_units));
      }
    }
  }
  for (std::size_t u = 0; u <= num_units; ++u) {
    std::vector<std::vector<bool>> mask(unit_of.size());
    bool any = false;
    for (std::size_t g = 0; g < unit_of.size(); ++g) {
      mask[g].resize(unit_of[g].size());
      for (std::size_t i = 0; i < unit_of[g].size(); ++i) {
        mask[g][i] = unit_of[g][i] == u;
        any = any || mask[g][i];
      }
    }
    if (any) out.masks.push_back(std::move(mask));
    out.unit_needs[u] = out.masks.size();
  }
  return out;
}

StepBehindForward::StepBehindForward(c10::Device device, std::vector<Unit> units, StepParts parts)
    : device_(device), units_(std::move(units)), parts_(std::move(parts)) {
  if (device_.is_cuda()) {
    const c10::impl::VirtualGuardImpl impl(device_.type());
    side_ = impl.getStreamFromGlobalPool(device_, /*isHighPriority=*/false);
    for (std::size_t k = 0; k < parts_.masks.size(); ++k) part_done_.emplace_back(device_.type());
    inputs_ready_.emplace(device_.type());
    step_done_.emplace(device_.type());
  }
  for (std::size_t u = 0; u < units_.size(); ++u) units_[u].bind(this, u + 1);
}

StepBehindForward::~StepBehindForward() {
  try {
    finish();
  } catch (...) {
    // A destructor must not throw; a device error here resurfaces at the next synchronisation.
  }
  for (auto& unit : units_) unit.bind(nullptr, 0);
}

c10::Stream StepBehindForward::current_stream() const {
  return c10::impl::VirtualGuardImpl(device_.type()).getStream(device_);
}

bool StepBehindForward::launch(const StepPart& step_part, const std::vector<at::Tensor>& grads) {
  finish();  // a previous step not yet waited for (no forward or backward in between) comes first
  const c10::impl::VirtualGuardImpl impl(device_.type());
  if (side_) {
    inputs_ready_->record(current_stream());
    inputs_ready_->block(*side_);
    previous_ = impl.exchangeStream(*side_);
  }
  const auto restore = [&] {
    if (previous_) impl.exchangeStream(*previous_);
    previous_.reset();
  };
  const std::size_t n = parts_.masks.size();
  try {
    for (std::size_t k = 0; k < n; ++k) {
      if (!step_part(parts_.masks[k], k + 1 == n)) {
        if (k > 0) {
          throw JobError("step behind the forward: the optimizer refused part " + std::to_string(k) + " of a step");
        }
        restore();
        return false;
      }
      if (side_) part_done_[k].record(*side_);
    }
  } catch (...) {
    restore();  // the training thread's stream as launch() found it, whatever the optimizer threw
    throw;
  }
  if (side_) {
    for (const auto& g : grads) {
      if (g.defined() && g.device() == device_) g.record_stream(*side_);
    }
  }
  pending_ = true;
  ++steps_;
  return true;
}

void StepBehindForward::close() {
  if (!previous_) return;
  step_done_->record(*side_);
  c10::impl::VirtualGuardImpl(device_.type()).exchangeStream(*previous_);
  const std::size_t root = parts_.unit_needs.at(0);
  if (root > 0) part_done_[root - 1].block(*previous_);
  previous_.reset();
}

void StepBehindForward::finish() {
  if (!pending_) return;
  close();
  if (side_) step_done_->block(current_stream());
  pending_ = false;
}

void StepBehindForward::before_forward(std::size_t id) {
  if (!pending_ || !side_) return;
  const std::size_t needs = parts_.unit_needs.at(id);
  if (needs > 0) part_done_[needs - 1].block(current_stream());
}

}  // namespace deepspeed::zero
