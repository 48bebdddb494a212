#pragma once
// Internal: one background thread that runs tasks in the order they were submitted. ZeRO-Offload uses it to
// bring gradient chunks to the host while backward goes on, without blocking autograd's thread.
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>

namespace deepspeed::zero {

class SerialWorker {
 public:
  SerialWorker() = default;
  ~SerialWorker();
  SerialWorker(const SerialWorker&) = delete;
  SerialWorker& operator=(const SerialWorker&) = delete;

  /// Queues `task` (the thread starts on first use). Thread-safe.
  void submit(std::function<void()> task);
  /// Returns once every task submitted so far has run; rethrows the first exception a task threw (the tasks
  /// after it still ran).
  void drain();

 private:
  void run();

  std::mutex mutex_;
  std::condition_variable wake_, idle_;
  std::deque<std::function<void()>> tasks_;
  std::size_t running_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
  std::thread thread_;
};

}  // namespace deepspeed::zero
