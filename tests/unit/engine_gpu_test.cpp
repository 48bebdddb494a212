// The engine's bf16 and fp32 steps on one GPU against hand-written ones (engine_steps.h): the paths CI cannot
// run — the bf16 gradients read as autograd made them, the clipping factor computed and read on the device,
// FusedAdam's one-pass kernel writing the bf16 weights, the throughput timer's events (a line every 2 steps).
#include <cstdlib>

#include "tests/unit/engine_steps.h"

namespace {

using namespace deepspeed::testing;

class EngineGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  }
};

TEST_F(EngineGpu, Bf16ClippedStepsMatchHandWrittenMasters) { bf16_steps_against_reference(0.05); }
TEST_F(EngineGpu, Bf16UnclippedStepsMatchHandWrittenMasters) { bf16_steps_against_reference(0.0); }
TEST_F(EngineGpu, Fp32ClippedStepsMatchAHandWrittenAdamW) { fp32_steps_against_reference(0.05); }

// The host route (DS_HOST_GRAD_NORM=1: the norm read before the update), which the measurements compare with.
TEST_F(EngineGpu, HostNormBf16ClippedStepsMatchHandWrittenMasters) {
  setenv("DS_HOST_GRAD_NORM", "1", 1);
  bf16_steps_against_reference(0.05);
  unsetenv("DS_HOST_GRAD_NORM");
}

}  // namespace
