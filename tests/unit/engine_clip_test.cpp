// The engine's clipped and unclipped steps end to end against hand-written ones, where CI runs (one process;
// the engine's device, the CPU without a GPU). Without loss scaling the engine computes the clipping factor beside
// the gradients and hands it to the optimizer as a tensor (EngineImpl::clip_on_device); on one rank with GAS 1 a
// bf16 model's gradients reach the optimizer as autograd made them. These hold both routes to the arithmetic.
#include <cstdlib>

#include "tests/unit/engine_steps.h"

namespace {

using namespace deepspeed::testing;

TEST(EngineClip, ClippedStepsMatchAHandWrittenAdamW) { fp32_steps_against_reference(0.05); }
TEST(EngineClip, UnclippedStepsMatchAHandWrittenAdamW) { fp32_steps_against_reference(1e6); }
TEST(EngineClip, Bf16ClippedStepsMatchHandWrittenMasters) { bf16_steps_against_reference(0.05); }
TEST(EngineClip, Bf16UnclippedStepsMatchHandWrittenMasters) { bf16_steps_against_reference(0.0); }

// DS_HOST_GRAD_NORM=1 takes the host route (the norm read before the update, the factor a number): the same
// steps. Each test is its own process under CTest, so the variable does not leak into the others.
struct HostNorm : ::testing::Test {
  void SetUp() override { setenv("DS_HOST_GRAD_NORM", "1", 1); }
  void TearDown() override { unsetenv("DS_HOST_GRAD_NORM"); }
};
TEST_F(HostNorm, ClippedStepsMatchAHandWrittenAdamW) { fp32_steps_against_reference(0.05); }
TEST_F(HostNorm, Bf16ClippedStepsMatchHandWrittenMasters) { bf16_steps_against_reference(0.05); }

}  // namespace
