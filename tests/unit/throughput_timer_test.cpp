// The throughput timer's report lines (DeepSpeed's ThroughputTimer): when they come and what they say. On a CUDA
// device the timer measures with events (throughput_timer_gpu_test.cpp); here the host clock.
#include <gtest/gtest.h>

#include <chrono>
#include <regex>
#include <string>
#include <thread>

#include "deepspeed/engine/timers.h"

namespace deepspeed::engine {
namespace {

// Two micro-steps per optimizer step, each sleeping `ms` between start and stop.
std::vector<std::string> run(ThroughputTimer& timer, int steps, int ms) {
  std::vector<std::string> lines;
  for (int s = 0; s < steps; ++s) {
    for (int m = 0; m < 2; ++m) {
      timer.start();
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
      lines.push_back(timer.stop(/*global_step=*/m == 1, /*report_speed=*/true));
    }
  }
  return lines;
}

TEST(ThroughputTimer, ReportsEveryStepsPerOutputAfterTheStartStep) {
  for (const bool synchronized : {true, false}) {
    ThroughputTimer timer(c10::Device(c10::kCPU), true, synchronized, /*batch_size=*/16, /*steps_per_output=*/2,
                          /*start_step=*/2);
    const auto lines = run(timer, 6, 1);
    ASSERT_EQ(lines.size(), 12u);
    const std::regex format(
        R"(epoch=0/micro_step=\d+/global_step=\d+, RunningAvgSamplesPerSec=[0-9.e+]+, CurrSamplesPerSec=[0-9.e+]+, )"
        R"(MemAllocated=[0-9.]+GB, MaxMemAllocated=[0-9.]+GB)");
    for (std::size_t i = 0; i < lines.size(); ++i) {
      // Optimizer steps 4 and 6 end at micro-steps 8 and 12 (step 2 ends before timing starts).
      const bool due = i == 7 || i == 11;
      EXPECT_EQ(!lines[i].empty(), due) << i << ": " << lines[i];
      if (due) EXPECT_TRUE(std::regex_match(lines[i], format)) << lines[i];
    }
    EXPECT_EQ(lines[7].rfind("epoch=0/micro_step=8/global_step=4, ", 0), 0u) << lines[7];
    // Two micro-steps of ≥ 1 ms per 16 samples: at most 8000 samples/s, well above 0.
    const double avg = timer.avg_samples_per_sec();
    EXPECT_GT(avg, 0.0);
    EXPECT_LE(avg, 8000.0);
  }
}

TEST(ThroughputTimer, DisabledSaysNothing) {
  ThroughputTimer timer(c10::Device(c10::kCPU), false, true, 16, 1, 0);
  for (const auto& line : run(timer, 3, 0)) EXPECT_TRUE(line.empty());
}

}  // namespace
}  // namespace deepspeed::engine
