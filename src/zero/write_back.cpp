#include "src/zero/write_back.h"

#include <algorithm>
#include <stdexcept>

namespace deepspeed::zero {

WriteBackOrder plan_write_back(const std::vector<BucketId>& buckets,
                               const std::vector<std::vector<std::size_t>>& bucket_units, std::size_t num_units) {
  if (bucket_units.size() != buckets.size()) throw std::invalid_argument("plan_write_back: one unit list per bucket");
  WriteBackOrder order;
  order.unit_prefix.assign(num_units + 1, 0);
  std::vector<bool> placed(buckets.size(), false);
  auto place = [&](std::size_t i) {
    placed[i] = true;
    order.sequence.push_back(buckets[i]);
  };
  // Unit by unit: each takes the buckets holding any of its parameters that no earlier unit took. A unit's
  // prefix ends at the last of its buckets, wherever an earlier unit put it.
  std::vector<std::size_t> position(buckets.size(), 0);
  for (std::size_t u = 0; u <= num_units; ++u) {
    for (std::size_t i = 0; i < buckets.size(); ++i) {
      const auto& units = bucket_units[i];
      if (std::find(units.begin(), units.end(), u) == units.end()) continue;
      if (!placed[i]) {
        position[i] = order.sequence.size();
        place(i);
      }
      order.unit_prefix[u] = std::max(order.unit_prefix[u], position[i] + 1);
    }
  }
  for (std::size_t i = 0; i < buckets.size(); ++i) {
    if (!placed[i]) place(i);
  }
  return order;
}

ForwardWriteBack::ForwardWriteBack(WriteBackOrder order, std::function<void(std::size_t)> write,
                                   std::function<void()> finished)
    : order_(std::move(order)), write_(std::move(write)), finished_(std::move(finished)) {}

void ForwardWriteBack::arm() {
  finish();  // a step not followed by a forward (two steps in a row) still writes everything, in order
  pending_ = true;
  written_ = 0;
  write_through(order_.unit_prefix.at(0));
}

void ForwardWriteBack::write_through(std::size_t n) {
  if (!pending_) return;
  n = std::min(n, order_.sequence.size());
  while (written_ < n) write_(written_++);
  if (written_ == order_.sequence.size()) {
    pending_ = false;
    finished_();
  }
}

}  // namespace deepspeed::zero
