// DS_STEP_BEHIND_FORWARD=1 on a GPU: the step's parts on a side stream, each unit's forward waiting for its own
// part, the gradients released behind them; bit for bit the whole step's weights and losses.
#include "tests/unit/step_behind_forward_steps.h"

namespace {

using deepspeed::testing::expect_behind_equals_whole;

class StepBehindForwardGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  }
};

TEST_F(StepBehindForwardGpu, Bf16EqualsTheWholeStep) {
  ASSERT_TRUE(deepspeed::testing::train_unit_net(true, true, 1, 1).on_cuda);
  expect_behind_equals_whole(/*bf16=*/true, /*gas=*/1);
}
TEST_F(StepBehindForwardGpu, Bf16WithAccumulationEqualsTheWholeStep) { expect_behind_equals_whole(true, 2); }
TEST_F(StepBehindForwardGpu, Fp32EqualsTheWholeStep) { expect_behind_equals_whole(false, 1); }
// Each unit's part on one block (its chunks in a loop) beside the forward, whose GEMMs leave that SM: the same
// bits. (The default bound, 16 SMs, exceeds these parts' chunks, so they take one block per chunk.)
TEST_F(StepBehindForwardGpu, Bf16BoundedToOneSmEqualsTheWholeStep) {
  const deepspeed::testing::ScopedEnv one("DS_STEP_BEHIND_SMS", "1");
  expect_behind_equals_whole(true, 1);
}

}  // namespace
