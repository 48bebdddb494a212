// SGD with torch.optim.SGD semantics (momentum buffer starts as a copy of the first gradient).
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "deepspeed/optim/optimizer.h"
#include "deepspeed/util/strings.h"

namespace deepspeed::optim {

void Sgd::step() {
  at::NoGradGuard no_grad;
  for (std::size_t gi = 0; gi < groups_.size(); ++gi) {
    auto& group = groups_[gi];
    const Hyper& h = group.hyper;
    for (std::size_t i = 0; i < group.params.size(); ++i) {
      auto& p = group.params[i];
      if (!p.grad().defined()) continue;
      at::Tensor d = p.grad();
      if (h.weight_decay != 0) d = d.add(p, h.weight_decay);
      if (h.momentum != 0) {
        auto& s = state(gi, i);
        auto it = s.find("momentum_buffer");
        if (it == s.end()) {
          it = s.emplace("momentum_buffer", d.clone()).first;
        } else {
          it->second.mul_(h.momentum).add_(d, 1 - h.dampening);
        }
        d = h.nesterov ? d.add(it->second, h.momentum) : it->second;
      }
      p.add_(d, -h.lr);
    }
  }
}

std::string Sgd::momentum_repr() const {
  std::vector<double> values;
  for (const auto& g : groups_) values.push_back(g.hyper.momentum);
  return util::py_float_list(values);
}

}  // namespace deepspeed::optim
