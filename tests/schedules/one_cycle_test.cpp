// OneCycle against closed-form expectations: the triangular cycle (continuous and in stairs), β1 moving
// the other way with β2 pinned to 0.99 on Adam-style targets, nothing on others, and the decay phase.
#include <cmath>

#include "tests/schedules/fake_target.h"

namespace deepspeed::optim::testing {
namespace {

// Fraction of the way from min to max at batch number n = t + 1 of a cycle of `up` + `down` steps:
// n / up while rising, (total - n) / down while falling; with stairs, floored to 1/stairs.
double cycle_scale(std::int64_t t, std::int64_t up, std::int64_t down, std::int64_t up_stairs = 0,
                   std::int64_t down_stairs = 0) {
  const std::int64_t total = up + down;
  const std::int64_t n = (t + 1) % total;
  if (n <= up) {
    return up_stairs > 0 ? std::floor(double(n) * up_stairs / up) / up_stairs : double(n) / up;
  }
  return down_stairs > 0 ? std::floor(double(total - n) * down_stairs / down) / down_stairs
                         : double(total - n) / down;
}

config::SchedulerConfig one_cycle(std::int64_t up, std::optional<std::int64_t> down = std::nullopt) {
  auto c = scheduler_config("OneCycle");
  c.cycle_min_lr = {0.001};
  c.cycle_max_lr = {0.01};
  c.cycle_first_step_size = up;
  c.cycle_second_step_size = down;
  c.cycle_min_mom = {0.8};
  c.cycle_max_mom = {0.9};
  return c;
}

TEST(OneCycle, ConstructionWritesMinLrAndMinMomentumButRecordsNoLastLr) {
  FakeTarget target({0.5, 0.5});
  auto s = make_scheduler(one_cycle(10), target);
  ASSERT_EQ(s->name(), "OneCycle");
  expect_close(target.lrs(), {0.001, 0.001});
  expect_close(target.beta1(), {0.8, 0.8});
  expect_close(target.beta2(), {0.99, 0.99});  // the configured 0.999 is replaced
  EXPECT_THROW(s->get_last_lr(), UsageError);
  EXPECT_EQ(s->last_batch_iteration(), -1);
}

TEST(OneCycle, SymmetricCycleWithInverseMomentumThenFlat) {
  FakeTarget target({0.5});
  auto s = make_scheduler(one_cycle(10), target);  // second half defaults to the first
  for (std::int64_t t : {0, 1, 4, 8, 9, 10, 14, 18, 19}) {
    const double scale = cycle_scale(t, 10, 10);
    expect_lr_at(*s, target, t, {0.001 + 0.009 * scale});
    expect_close(target.beta1(), {0.9 - 0.1 * scale}, "beta1");
    expect_close(*s->get_mom(), target.beta1());
    EXPECT_EQ(target.beta2()[0], kOneCycleBeta2);
  }
  // The peak is reached exactly at t = first_step_size - 1, with momentum at its minimum.
  s->step(9);
  EXPECT_DOUBLE_EQ(target.lrs()[0], 0.01);
  EXPECT_DOUBLE_EQ(target.beta1()[0], 0.8);
  // Without decay_step_size the lr stays at cycle_min_lr and β1 at cycle_max_mom after the cycle.
  for (std::int64_t t : {20, 21, 1000}) {
    expect_lr_at(*s, target, t, {0.001});
    expect_close(target.beta1(), {0.9});
  }
}

TEST(OneCycle, AsymmetricStaircase) {
  FakeTarget target({0.5});
  auto c = one_cycle(4, 12);
  c.cycle_first_stair_count = 2;
  c.cycle_second_stair_count = 3;
  auto s = make_scheduler(c, target);
  for (std::int64_t t = 0; t < 16; ++t) {
    const double scale = cycle_scale(t, 4, 12, 2, 3);
    expect_lr_at(*s, target, t, {0.001 + 0.009 * scale});
    expect_close(target.beta1(), {0.9 - 0.1 * scale}, "beta1");
  }
  // Spot values of the stairs: half way up after 2 of 4 rising steps, the exact peak, then thirds down.
  s->step(1);
  EXPECT_DOUBLE_EQ(target.lrs()[0], 0.001 + 0.009 * 0.5);
  s->step(3);
  EXPECT_DOUBLE_EQ(target.lrs()[0], 0.01);
  s->step(4);
  EXPECT_DOUBLE_EQ(target.lrs()[0], 0.001 + 0.009 * (2.0 / 3.0));
}

TEST(OneCycle, SecondStairCountDefaultsToTheFirst) {
  FakeTarget target({0.5});
  auto c = one_cycle(6, 6);
  c.cycle_first_stair_count = 3;
  auto s = make_scheduler(c, target);
  for (std::int64_t t = 0; t < 12; ++t) expect_lr_at(*s, target, t, {0.001 + 0.009 * cycle_scale(t, 6, 6, 3, 3)});
}

TEST(OneCycle, ZeroSecondHalfRisesThroughTheWholeCycle) {
  FakeTarget target({0.5});
  auto s = make_scheduler(one_cycle(10, 0), target);
  for (std::int64_t t : {0, 5, 8}) expect_lr_at(*s, target, t, {0.001 + 0.009 * (t + 1) / 10.0});
  expect_lr_at(*s, target, 9, {0.001});  // the cycle wraps to its start
  expect_lr_at(*s, target, 10, {0.001});
}

TEST(OneCycle, DecayPhaseDividesLrAndMultipliesMomentum) {
  FakeTarget target({0.5, 0.5});
  auto c = one_cycle(10);
  c.cycle_min_lr = {0.001, 0.002};
  c.cycle_max_lr = {0.01, 0.02};
  c.cycle_min_mom = {0.8, 0.85};
  c.cycle_max_mom = {0.9, 0.95};
  c.decay_step_size = 5;
  c.decay_lr_rate = 0.5;
  c.decay_mom_rate = 0.01;
  auto s = make_scheduler(c, target);
  expect_close(target.lrs(), {0.001, 0.002});
  expect_close(target.beta1(), {0.8, 0.85});
  expect_lr_at(*s, target, 9, {0.01, 0.02});
  expect_close(target.beta1(), {0.8, 0.85});
  // k counts decay steps from 1 at t = total; continuous in k, not floored to decay_step_size.
  for (std::int64_t t : {20, 21, 27, 120}) {
    const double k = t - 20 + 1;
    expect_lr_at(*s, target, t, {0.001 / (1 + 0.5 * k / 5), 0.002 / (1 + 0.5 * k / 5)});
    expect_close(target.beta1(), {0.9 * (1 + 0.01 * k / 5), 0.95 * (1 + 0.01 * k / 5)}, "beta1");
    expect_close(target.beta2(), {0.99, 0.99});
  }
}

TEST(OneCycle, DecayNeedsBothAStepSizeAndARate) {
  FakeTarget target({0.5});
  auto c = one_cycle(10);
  c.decay_lr_rate = 0.5;  // decay_step_size 0: no decay
  auto s = make_scheduler(c, target);
  expect_lr_at(*s, target, 30, {0.001});
  c.decay_step_size = 5;
  c.decay_lr_rate = 0.0;
  c.decay_mom_rate = 0.5;
  s = make_scheduler(c, target);
  expect_lr_at(*s, target, 30, {0.001});
  expect_close(target.beta1(), {0.9 * (1 + 0.5 * 11 / 5.0)});
}

TEST(OneCycle, MomentumOnlyForBetasTargets) {
  // SGD has momentum but no betas: DeepSpeed's OneCycle leaves it alone, as for a target without momentum.
  for (Momentum kind : {Momentum::kSgd, Momentum::kNone}) {
    FakeTarget target({0.5}, kind);
    auto s = make_scheduler(one_cycle(10), target);
    EXPECT_FALSE(s->get_mom().has_value());
    for (std::int64_t t : {0, 9, 25}) expect_lr_at(*s, target, t, {0.001 + 0.009 * cycle_scale(t, 10, 10) * (t < 20)});
    EXPECT_EQ(target.momentum_writes, 0);
    EXPECT_EQ(target.beta2_writes, 0);
    expect_close(target.beta1(), {0.9});
  }
  FakeTarget adam({0.5});
  auto c = one_cycle(10);
  c.cycle_momentum = false;
  auto s = make_scheduler(c, adam);
  s->step();
  EXPECT_FALSE(s->get_mom().has_value());
  EXPECT_EQ(adam.momentum_writes + adam.beta2_writes, 0);
}

TEST(OneCycle, PerGroupListsAreChecked) {
  FakeTarget target({0.5, 0.5});
  auto c = one_cycle(10);
  c.cycle_max_mom = {0.9, 0.95, 0.99};
  EXPECT_THROW(make_scheduler(c, target), ConfigError);
  EXPECT_EQ(target.lr_writes, 0);  // all lists are checked before anything is written
  FakeTarget sgd({0.5, 0.5}, Momentum::kSgd);
  EXPECT_NO_THROW(make_scheduler(c, sgd));  // momentum lists are not used without betas
  c.cycle_max_mom = {0.9};
  c.cycle_min_lr.clear();
  EXPECT_THROW(make_scheduler(c, target), ConfigError);
}

}  // namespace
}  // namespace deepspeed::optim::testing
