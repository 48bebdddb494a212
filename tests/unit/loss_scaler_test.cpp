// DeepSpeed's dynamic loss scaler on scripted overflow sequences.
#include <gtest/gtest.h>

#include "deepspeed/precision/loss_scaler.h"
#include "deepspeed/util/error.h"

using deepspeed::precision::LossScaler;

namespace {

deepspeed::config::Fp16Config fp16(int power, int window, int hysteresis, double min_scale = 1.0,
                                   bool consecutive = false) {
  deepspeed::config::Fp16Config c;
  c.enabled = true;
  c.initial_scale_power = power;
  c.loss_scale_window = window;
  c.hysteresis = hysteresis;
  c.min_loss_scale = min_scale;
  c.consecutive_hysteresis = consecutive;
  return c;
}

}  // namespace

TEST(LossScalerTest, HysteresisRunsOutBeforeHalving) {
  LossScaler s(fp16(16, 1000, 2));
  EXPECT_EQ(s.scale(), 65536.0);
  EXPECT_EQ(s.update(true), "[deepspeed] OVERFLOW! Rank 0 Skipping step. Attempted loss scale: 65536, but hysteresis "
                            "is 2. Reducing hysteresis to 1");
  EXPECT_EQ(s.scale(), 65536.0);
  EXPECT_EQ(s.update(true), "[deepspeed] OVERFLOW! Rank 0 Skipping step. Attempted loss scale: 65536, reducing to 32768");
  EXPECT_EQ(s.scale(), 32768.0);
  s.update(true);  // hysteresis stays exhausted until a window passes
  EXPECT_EQ(s.scale(), 16384.0);
}

TEST(LossScalerTest, DoublesAfterWindowOfCleanSteps) {
  LossScaler s(fp16(4, 3, 1));
  s.update(true);  // iter 0 overflows: 16 → 8, last_overflow_iter = 0
  EXPECT_EQ(s.scale(), 8.0);
  s.update(false);  // iter 1: stable 0
  s.update(false);  // iter 2: stable 1
  s.update(false);  // iter 3: stable 2
  EXPECT_EQ(s.scale(), 8.0);
  s.update(false);  // iter 4: stable 3 → double
  EXPECT_EQ(s.scale(), 16.0);
  for (int i = 0; i < 3; ++i) s.update(false);  // iter 5..7: stable 4..6 → doubles at 6
  EXPECT_EQ(s.scale(), 32.0);
}

TEST(LossScalerTest, NoOverflowFromStartDoublesAtWindow) {
  LossScaler s(fp16(2, 2, 2));
  s.update(false);  // iter 0: stable -0-1+... = 0 - (-1) - 1 = 0
  EXPECT_EQ(s.scale(), 4.0);
  s.update(false);  // iter 1: stable 1
  s.update(false);  // iter 2: stable 2 → double
  EXPECT_EQ(s.scale(), 8.0);
}

TEST(LossScalerTest, FloorAndErrorAtMinimum) {
  LossScaler s(fp16(2, 1000, 1, /*min_scale=*/2.0));
  s.update(true);  // 4 → 2
  EXPECT_EQ(s.scale(), 2.0);
  try {
    s.update(true);
    FAIL() << "expected the minimum-scale error";
  } catch (const deepspeed::JobError& e) {
    EXPECT_NE(std::string(e.what()).find("Current loss scale already at minimum - cannot decrease scale anymore. "
                                         "Exiting run."),
              std::string::npos);
  }
  LossScaler t(fp16(2, 1000, 1, /*min_scale=*/3.0));
  t.update(true);  // 4 → max(2, 3) = 3
  EXPECT_EQ(t.scale(), 3.0);
}

TEST(LossScalerTest, ConsecutiveHysteresisRefillsOnCleanStep) {
  LossScaler s(fp16(8, 1000, 3, 1.0, /*consecutive=*/true));
  s.update(true);
  s.update(true);
  EXPECT_EQ(s.hysteresis(), 1);
  s.update(false);
  EXPECT_EQ(s.hysteresis(), 3);
  EXPECT_EQ(s.scale(), 256.0);
}

TEST(LossScalerTest, StaticScaleNeverChanges) {
  auto c = fp16(16, 1, 1);
  c.loss_scale = 128;
  LossScaler s(c);
  EXPECT_FALSE(s.dynamic());
  s.update(true);
  s.update(false);
  s.update(false);
  EXPECT_EQ(s.scale(), 128.0);
}

TEST(LossScalerTest, StateRoundTrip) {
  LossScaler a(fp16(10, 5, 2));
  a.update(true);
  a.update(false);
  LossScaler b(fp16(10, 5, 2));
  b.load_state_dict(a.state_dict());
  for (bool o : {false, true, true, false, false, false, false, false, false}) {
    a.update(o);
    b.update(o);
    EXPECT_EQ(a.scale(), b.scale());
  }
}
