// The throughput timer on a CUDA device times micro-steps with events instead of synchronizing the device at
// their start and end: the host must run ahead of the device, and the rates must still be the device's.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include <ATen/ATen.h>

#include "deepspeed/engine/timers.h"

namespace deepspeed::engine {
namespace {

TEST(ThroughputTimerGpu, TimesTheDeviceWithoutWaitingForIt) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  const c10::Device cuda(c10::kCUDA, 0);
  const at::Tensor a = at::randn({4096, 4096}, at::TensorOptions().device(cuda));
  at::Tensor b = a.clone();
  ThroughputTimer timer(cuda, true, /*synchronized=*/true, /*batch_size=*/8, /*steps_per_output=*/5, /*start_step=*/0);
  auto work = [&] {
    for (int k = 0; k < 20; ++k) b = at::mm(a, b).div_(64.0);  // ~3 TF per micro-step
  };
  work();  // warm-up outside the timer
  synchronize_device(cuda);
  const auto t0 = std::chrono::steady_clock::now();
  std::string line;
  double host_seconds_to_queue = 0;
  for (int s = 0; s < 5; ++s) {
    timer.start();
    work();
    line = timer.stop(/*global_step=*/true, /*report_speed=*/true);
    if (s == 3) host_seconds_to_queue = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  // The first four steps were queued without waiting: the host got there long before the device finished.
  synchronize_device(cuda);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(host_seconds_to_queue, 0.5 * wall) << "queued in " << host_seconds_to_queue << " s of " << wall;
  ASSERT_EQ(line.rfind("epoch=0/micro_step=5/global_step=5, RunningAvgSamplesPerSec=", 0), 0u) << line;
  // 40 samples over the device's time for five steps: between the whole wall time and a fifth of it.
  const double avg = timer.avg_samples_per_sec();
  EXPECT_GE(avg, 40.0 / wall * 0.99) << line;
  EXPECT_LE(avg, 5 * 40.0 / wall) << line;
}

}  // namespace
}  // namespace deepspeed::engine
