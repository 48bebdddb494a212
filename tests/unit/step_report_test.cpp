// The progress and memory fields deepspeed.cpp adds to DeepSpeed's step lines.
#include <gtest/gtest.h>

#include "deepspeed/zero/host_memory.h"
#include "src/engine/step_report.h"

namespace deepspeed::engine {
namespace {

TEST(StepReport, EtaFormat) {
  EXPECT_EQ(format_eta(0), "0:00:00");
  EXPECT_EQ(format_eta(59.9), "0:00:59");
  EXPECT_EQ(format_eta(3661), "1:01:01");
  EXPECT_EQ(format_eta(100 * 3600 + 5), "100:00:05");
  EXPECT_EQ(format_eta(-3), "0:00:00");
}

TEST(StepReport, ProgressFields) {
  // 120 of 1000 steps, 64 samples a step at 128 samples/s: 880 × 64 / 128 = 440 s left.
  EXPECT_EQ(progress_fields(120, 1000, 64, 128.0), ", progress=120/1000 (12.0%), samples/sec=128.0, eta=0:07:20");
  EXPECT_EQ(progress_fields(0, 1000, 64, 0.0), ", progress=0/1000 (0.0%)");  // no rate before the first steps
  EXPECT_EQ(progress_fields(10, std::nullopt, 64, 50.25), ", samples/sec=50.2");  // unknown length: no ETA
  EXPECT_EQ(progress_fields(1000, 1000, 64, 10.0), ", progress=1000/1000 (100.0%), samples/sec=10.0");
  EXPECT_EQ(progress_fields(1, 3, 1, 0.0), ", progress=1/3 (33.3%)");
}

TEST(StepReport, MeterStartsAtTheFirstLine) {
  ProgressMeter meter(32);
  meter.set_total_steps(10);
  EXPECT_EQ(meter.fields(0), ", progress=0/10 (0.0%)");  // initialize()'s step-0 line starts the clock
  const std::string later = meter.fields(5);
  EXPECT_EQ(later.rfind(", progress=5/10 (50.0%), samples/sec=", 0), 0u) << later;
  EXPECT_NE(later.find(", eta="), std::string::npos) << later;
}

TEST(StepReport, MemoryFieldsOnTheCpu) {
  EXPECT_GT(host_rss_bytes(), 0);
  const std::string fields = memory_fields(c10::Device(c10::kCPU));
  EXPECT_EQ(fields.rfind(", host_RSS=", 0), 0u) << fields;  // no device figures without a GPU
  EXPECT_NE(fields.find(" GB, pinned="), std::string::npos) << fields;
  // Pinned bytes are only counted for page-locked blocks; an ordinary host block leaves the count alone.
  const auto before = zero::pinned_host_bytes();
  const at::Tensor t = zero::host_empty(1000, at::kFloat, /*pinned=*/false);
  EXPECT_EQ(zero::pinned_host_bytes(), before);
}

}  // namespace
}  // namespace deepspeed::engine
