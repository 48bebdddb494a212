// The step behind the next forward (src/zero/step_behind_forward.h) where CI runs: the plan of its parts, the
// optimizer stepping in parts, and the engine's runs with and without DS_STEP_BEHIND_FORWARD=1 (on a device
// without streams the parts run in order at the step: the same calls and arithmetic, without the overlap).
#include <vector>

#include <ATen/ATen.h>

#include "deepspeed/optim/optimizer.h"
#include "src/zero/step_behind_forward.h"
#include "tests/unit/step_behind_forward_steps.h"

namespace {

using deepspeed::zero::plan_step_parts;

TEST(StepParts, RootFirstThenEachUnitAndUnitsWaitForWhatPrecedesThem) {
  // Two optimizer groups; units 1 and 3 hold parameters, unit 2 none, the root two.
  const auto plan = plan_step_parts({{0, 1, 3, 0}, {1, 3}}, 3);
  ASSERT_EQ(plan.masks.size(), 3u);
  EXPECT_EQ(plan.masks[0], (std::vector<std::vector<bool>>{{true, false, false, true}, {false, false}}));
  EXPECT_EQ(plan.masks[1], (std::vector<std::vector<bool>>{{false, true, false, false}, {true, false}}));
  EXPECT_EQ(plan.masks[2], (std::vector<std::vector<bool>>{{false, false, true, false}, {false, true}}));
  EXPECT_EQ(plan.unit_needs, (std::vector<std::size_t>{1, 2, 2, 3}));
}

TEST(StepParts, NoRootParametersMeansTheForwardStartsAtOnce) {
  const auto plan = plan_step_parts({{1, 2}}, 2);
  ASSERT_EQ(plan.masks.size(), 2u);
  EXPECT_EQ(plan.unit_needs, (std::vector<std::size_t>{0, 1, 2}));
  EXPECT_THROW(plan_step_parts({{3}}, 2), std::invalid_argument);
}

// FusedAdam in parts, the factor taken once for the step, equals FusedAdam's whole step bit for bit; after the
// last part the factor is spent (the next step without one is the whole step's next step too).
TEST(StepParts, FusedAdamInPartsEqualsTheWholeStep) {
  deepspeed::optim::Hyper h;
  h.lr = 1e-2;
  h.weight_decay = 0.01;
  h.adam_w_mode = true;
  const auto make = [&] {
    std::vector<at::Tensor> params;
    for (int i = 0; i < 3; ++i) params.push_back((at::arange(40, at::kFloat) * (0.1 + i)).sin().requires_grad_(true));
    return params;
  };
  auto whole_params = make(), part_params = make();
  deepspeed::optim::FusedAdam whole({{whole_params, h, {}}}), parts({{part_params, h, {}}});
  for (int step = 0; step < 3; ++step) {
    for (std::size_t i = 0; i < 3; ++i) {
      const at::Tensor g = (at::arange(40, at::kFloat) * (0.3 + step + i)).cos();
      whole_params[i].mutable_grad() = g.clone();
      part_params[i].mutable_grad() = g.clone();
    }
    if (step < 2) {  // the third step takes no factor: the parts must not keep the second's
      whole.take_gradient_scale(0.25 + step);
      parts.take_gradient_scale(0.25 + step);
    }
    whole.step();
    ASSERT_TRUE(parts.step_part({{false, true, false}}, /*last=*/false));
    ASSERT_TRUE(parts.step_part({{true, false, true}}, /*last=*/true));
    for (std::size_t i = 0; i < 3; ++i) {
      EXPECT_TRUE(at::equal(whole_params[i].detach(), part_params[i].detach())) << "step " << step << ", " << i;
    }
  }
}

TEST(StepParts, OptimizersWithoutPartsRefuseThem) {
  std::vector<at::Tensor> params = {at::ones({4}).requires_grad_(true)};
  params[0].mutable_grad() = at::ones({4});
  deepspeed::optim::Sgd sgd({{params, {}, {}}});
  EXPECT_FALSE(sgd.step_part({{true}}, true));
  EXPECT_TRUE(at::equal(params[0].detach(), at::ones({4})));  // nothing updated
}

using deepspeed::testing::expect_behind_equals_whole;
TEST(StepBehindForward, Fp32EqualsTheWholeStep) { expect_behind_equals_whole(/*bf16=*/false, /*gas=*/1); }
TEST(StepBehindForward, Bf16EqualsTheWholeStep) { expect_behind_equals_whole(/*bf16=*/true, /*gas=*/1); }
TEST(StepBehindForward, Bf16WithAccumulationEqualsTheWholeStep) { expect_behind_equals_whole(true, /*gas=*/2); }
TEST(StepBehindForward, WithoutUnitsTheStepRunsWhole) { expect_behind_equals_whole(true, 1, /*with_units=*/false); }

}  // namespace
