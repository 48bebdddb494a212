#pragma once
// Internal: how far backward may run ahead of the gradient landings of ZeRO-Offload.
//
// Autograd's thread queues kernels far ahead of the GPU (at 10B parameters on one H200, ~15 ZeRO-3 units), and
// each bucket it opens is a send buffer allocated from that moment; the buffer is freed only once the GPU has
// produced the bucket and the landing thread has copied it to the host. Unbounded, that lead was the largest
// part of backward's peak above the activations (3.6-5.5 GiB). The budget counts the send buffers of buckets
// bound for the host from the moment they are opened until they have landed, and makes the thread that opens
// one wait while the pending landings and this one would exceed the cap. Buckets only open (still filling on the
// waiting thread itself) are not held against it: they cannot land until that thread goes on, and a small one
// opened early but launched late (a parameter group of biases) made a cap of two buckets hold one (3.8B on one
// H200: a wait before every bucket, 12 % slower). So the live bytes are bounded by the cap plus the buckets open.
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace deepspeed::zero {

class LandingBudget {
 public:
  explicit LandingBudget(std::int64_t cap_bytes) : cap_(cap_bytes) {}

  /// Before a send buffer of `bytes` is allocated (autograd's thread). Blocks while the pending landings plus
  /// this buffer would exceed the cap (never while none is pending).
  void open(std::int64_t bytes);
  /// The bucket was launched: its landing is now pending (its bytes were counted by open()).
  void launched(std::int64_t bytes);
  /// A pending landing finished and its send buffer was freed (the landing thread).
  void landed(std::int64_t bytes);

  std::int64_t cap() const { return cap_; }
  /// The most bytes counted at once (open + pending), and how many times open() had to wait.
  std::int64_t peak() const;
  std::int64_t waits() const;

 private:
  const std::int64_t cap_;
  mutable std::mutex mutex_;
  std::condition_variable freed_;
  std::int64_t live_ = 0;     // open or pending
  std::int64_t pending_ = 0;  // launched, not yet landed
  std::int64_t peak_ = 0;
  std::int64_t waits_ = 0;
};

}  // namespace deepspeed::zero
