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

}  // namespace
