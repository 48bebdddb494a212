// WarmupLR, WarmupDecayLR, WarmupCosineLR and LRRangeTest against closed-form formulas written here from
// DeepSpeed's definitions (never by calling the implementation), plus the construction side effects.
#include <cmath>
#include <numbers>

#include "tests/schedules/fake_target.h"

namespace deepspeed::optim::testing {
namespace {

// Warmup fraction with the warmup length clamped to >= 2 as DeepSpeed does.
double warm(const std::string& type, double t, double w) {
  w = std::max(2.0, w);
  return type == "log" ? std::log(t + 1) / std::log(w) : t / w;
}

std::vector<double> mix(const std::vector<double>& lo, const std::vector<double>& hi, double gamma) {
  std::vector<double> out(lo.size());
  for (std::size_t i = 0; i < lo.size(); ++i) out[i] = lo[i] + (hi[i] - lo[i]) * gamma;
  return out;
}

std::vector<double> scaled(const std::vector<double>& v, double factor) {
  std::vector<double> out(v);
  for (double& x : out) x *= factor;
  return out;
}

class WarmupTypes : public ::testing::TestWithParam<std::string> {};
INSTANTIATE_TEST_SUITE_P(Schedules, WarmupTypes, ::testing::Values("log", "linear"));

TEST_P(WarmupTypes, WarmupLRPerGroupWarmupThenHold) {
  const std::string type = GetParam();
  FakeTarget target({0.5, 0.25});
  auto c = scheduler_config("WarmupLR");
  c.warmup_min_lr = {0.001, 0.0};
  c.warmup_max_lr = {0.01, 0.02};
  c.warmup_num_steps = 10;
  c.warmup_type = type;
  auto s = make_scheduler(c, target);
  ASSERT_EQ(s->name(), "WarmupLR");
  // Constructed from scratch: the min lrs are written at once and recorded as the last lr.
  expect_close(target.lrs(), {0.001, 0.0});
  expect_close(s->get_last_lr(), {0.001, 0.0});
  EXPECT_EQ(s->last_batch_iteration(), -1);
  const std::vector<double> lo{0.001, 0.0}, hi{0.01, 0.02};
  for (std::int64_t t : {0, 1, 5, 9}) expect_lr_at(*s, target, t, mix(lo, hi, warm(type, t, 10)));
  for (std::int64_t t : {10, 11, 1000}) expect_lr_at(*s, target, t, hi);
  EXPECT_EQ(target.momentum_writes, 0);
}

TEST_P(WarmupTypes, WarmupLRWithoutMaxWarmsToTheOptimizerLr) {
  FakeTarget target({0.5, 0.25});
  auto c = scheduler_config("WarmupLR");
  c.warmup_min_lr = {0.1};  // one value for every group
  c.warmup_num_steps = 4;
  c.warmup_type = GetParam();
  auto s = make_scheduler(c, target);
  expect_close(target.lrs(), {0.1, 0.1});
  expect_lr_at(*s, target, 2, mix({0.1, 0.1}, {0.5, 0.25}, warm(GetParam(), 2, 4)));
  expect_lr_at(*s, target, 4, {0.5, 0.25});
}

TEST_P(WarmupTypes, WarmupStepsBelowTwoCountAsTwo) {
  FakeTarget target({1.0});
  auto c = scheduler_config("WarmupLR");
  c.warmup_min_lr = {0.0};
  c.warmup_max_lr = {1.0};
  c.warmup_num_steps = 1;
  c.warmup_type = GetParam();
  auto s = make_scheduler(c, target);
  expect_lr_at(*s, target, 0, {0.0});
  expect_lr_at(*s, target, 1, {GetParam() == "log" ? 1.0 : 0.5});
  expect_lr_at(*s, target, 2, {1.0});
}

TEST_P(WarmupTypes, WarmupDecayLRWarmsThenDecaysLinearlyToZeroGamma) {
  const std::string type = GetParam();
  FakeTarget target({0.5, 0.5, 0.5});
  auto c = scheduler_config("WarmupDecayLR");
  c.warmup_min_lr = {0.001, 0.002, 0.0};
  c.warmup_max_lr = {0.01};
  c.warmup_num_steps = 10;
  c.total_num_steps = 30;
  c.warmup_type = type;
  auto s = make_scheduler(c, target);
  ASSERT_EQ(s->name(), "WarmupDecayLR");
  const std::vector<double> lo{0.001, 0.002, 0.0}, hi{0.01, 0.01, 0.01};
  expect_close(target.lrs(), lo);
  for (std::int64_t t : {0, 1, 5, 9}) expect_lr_at(*s, target, t, mix(lo, hi, warm(type, t, 10)));
  // After warmup gamma = (T - t) / (T - W), floored at 0: the lr falls to warmup_min_lr at T and stays.
  for (std::int64_t t : {10, 11, 20, 29}) expect_lr_at(*s, target, t, mix(lo, hi, (30.0 - t) / 20.0));
  for (std::int64_t t : {30, 31, 500}) expect_lr_at(*s, target, t, lo);
}

TEST(WarmupDecayLR, DefaultMaxIsOneThousandthNotTheOptimizerLr) {
  FakeTarget target({0.5});
  auto c = scheduler_config("WarmupDecayLR");
  c.warmup_num_steps = 10;
  c.total_num_steps = 20;
  auto s = make_scheduler(c, target);
  expect_lr_at(*s, target, 10, {0.001});
  expect_lr_at(*s, target, 15, {0.0005});
}

TEST(WarmupDecayLR, TotalBelowWarmupDropsToMinAfterWarmup) {
  FakeTarget target({0.5});
  auto c = scheduler_config("WarmupDecayLR");
  c.warmup_min_lr = {0.1};
  c.warmup_max_lr = {1.0};
  c.warmup_num_steps = 10;
  c.total_num_steps = 5;
  c.warmup_type = "linear";
  auto s = make_scheduler(c, target);
  expect_lr_at(*s, target, 9, {0.1 + 0.9 * 0.9});
  expect_lr_at(*s, target, 10, {0.1});
}

TEST_P(WarmupTypes, WarmupCosineLRScalesTheOptimizerLr) {
  const std::string type = GetParam();
  FakeTarget target({0.1, 0.05});
  auto c = scheduler_config("WarmupCosineLR");
  c.warmup_num_steps = 10;
  c.total_num_steps = 110;
  c.warmup_min_ratio = 0.1;
  c.cos_min_ratio = 0.01;
  c.warmup_type = type;
  auto s = make_scheduler(c, target);
  ASSERT_EQ(s->name(), "WarmupCosineLR");
  // Before the first step the lr is 0 (not warmup_min_ratio * lr); the base lrs were read beforehand.
  expect_close(target.lrs(), {0.0, 0.0});
  expect_close(s->get_last_lr(), {0.0, 0.0});
  const std::vector<double> base{0.1, 0.05};
  const auto warm_ratio = [&](double t) { return 0.1 + 0.9 * warm(type, t, 10); };
  const auto cos_ratio = [](double progress) {
    return 0.01 + 0.99 * 0.5 * (1 + std::cos(std::numbers::pi * progress));
  };
  for (std::int64_t t : {0, 1, 5, 9}) expect_lr_at(*s, target, t, scaled(base, warm_ratio(t)));
  // The cosine counts from 1 at t = W: its first value is already below 1.
  for (std::int64_t t : {10, 35, 59, 100, 109}) expect_lr_at(*s, target, t, scaled(base, cos_ratio((t - 9) / 100.0)));
  expect_close(s->get_lr(), scaled(base, 0.01));
  // Past the end it holds at cos_min_ratio instead of rising again.
  for (std::int64_t t : {110, 150, 209, 10000}) expect_lr_at(*s, target, t, scaled(base, 0.01));
}

TEST(WarmupCosineLR, TotalNotAboveWarmupHoldsTheFloor) {
  FakeTarget target({1.0});
  auto c = scheduler_config("WarmupCosineLR");
  c.warmup_num_steps = 10;
  c.total_num_steps = 10;
  c.cos_min_ratio = 0.2;
  auto s = make_scheduler(c, target);
  expect_lr_at(*s, target, 10, {0.2});
  expect_lr_at(*s, target, 11, {0.2});
}

TEST(LRRangeTest, ContinuousAndStaircaseGrowth) {
  for (bool staircase : {false, true}) {
    FakeTarget target({0.5, 0.5});
    auto c = scheduler_config("LRRangeTest");
    c.lr_range_test_min_lr = {0.001, 0.002};
    c.lr_range_test_step_size = 10;
    c.lr_range_test_step_rate = 2.0;
    c.lr_range_test_staircase = staircase;
    auto s = make_scheduler(c, target);
    ASSERT_EQ(s->name(), "LRRangeTest");
    const std::vector<double> lo{0.001, 0.002};
    expect_close(target.lrs(), lo);
    expect_close(s->get_last_lr(), lo);
    // lr = min * (1 + rate * (t + 1) / size), the interval floored for the staircase.
    for (std::int64_t t : {0, 1, 8, 9, 10, 25, 999}) {
      const double interval = (t + 1) / 10.0;
      expect_lr_at(*s, target, t, scaled(lo, 1 + 2.0 * (staircase ? std::floor(interval) : interval)));
    }
  }
}

TEST(Step, DefaultAdvancesByOneAndExplicitJumpsAnywhere) {
  FakeTarget target({0.5});
  auto c = scheduler_config("WarmupDecayLR");
  c.warmup_min_lr = {0.0};
  c.warmup_max_lr = {1.0};
  c.warmup_num_steps = 10;
  c.total_num_steps = 110;
  c.warmup_type = "linear";
  auto s = make_scheduler(c, target);
  s->step();
  EXPECT_EQ(s->last_batch_iteration(), 0);
  expect_close(target.lrs(), {0.0});
  s->step();
  expect_close(target.lrs(), {0.1});
  s->step(60);
  expect_close(target.lrs(), {0.5});
  s->step();
  EXPECT_EQ(s->last_batch_iteration(), 61);
  expect_close(target.lrs(), {0.49});
  s->step(3);  // backwards is allowed: only last_batch_iteration is state
  expect_close(target.lrs(), {0.3});
  // get_lr() computes for the current iteration without writing.
  const int writes = target.lr_writes;
  expect_close(s->get_lr(), {0.3});
  EXPECT_EQ(target.lr_writes, writes);
}

TEST(Construction, ResumingWritesNothingAndHasNoLastLr) {
  for (const char* type : {"WarmupLR", "WarmupDecayLR", "WarmupCosineLR", "OneCycle", "LRRangeTest"}) {
    FakeTarget target({0.5});
    auto c = scheduler_config(type);
    c.total_num_steps = 100;
    c.cycle_min_lr = {0.1};
    c.cycle_max_lr = {1.0};
    c.last_batch_iteration = 41;
    auto s = make_scheduler(c, target);
    EXPECT_EQ(s->last_batch_iteration(), 41) << type;
    EXPECT_EQ(target.lr_writes, 0) << type;
    EXPECT_EQ(target.momentum_writes + target.beta2_writes, 0) << type;
    EXPECT_THROW(s->get_last_lr(), UsageError) << type;
    s->step();
    EXPECT_EQ(s->last_batch_iteration(), 42) << type;
    EXPECT_EQ(s->get_last_lr(), target.lrs()) << type;
  }
}

TEST(Construction, NoTypeMeansNoScheduler) {
  FakeTarget target({0.5});
  EXPECT_EQ(make_scheduler(config::SchedulerConfig{}, target), nullptr);
}

TEST(Construction, PerGroupListOfWrongSizeNamesTheKeyAndLeavesTargetAlone) {
  FakeTarget target({0.5, 0.5, 0.5});
  auto c = scheduler_config("WarmupLR");
  c.warmup_max_lr = {0.1, 0.2};
  try {
    make_scheduler(c, target, "my.json");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.rfind("my.json: scheduler.params.warmup_max_lr: ", 0), 0u) << what;
    EXPECT_NE(what.find("(3)"), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
  EXPECT_EQ(target.lr_writes, 0);
  c.warmup_max_lr = {0.1, 0.2, 0.3};
  c.warmup_min_lr = {0.0, 0.0};
  EXPECT_THROW(make_scheduler(c, target), ConfigError);
  c.warmup_min_lr = {0.0, 0.01, 0.02};
  EXPECT_NO_THROW(make_scheduler(c, target));
}

TEST(Construction, ParametersDeepSpeedRejects) {
  FakeTarget target({0.5});
  auto c = scheduler_config("WarmupCosineLR");
  c.warmup_num_steps = 0;
  EXPECT_THROW(make_scheduler(c, target), ConfigError);
  c = scheduler_config("LRRangeTest");
  c.lr_range_test_step_size = 0;
  EXPECT_THROW(make_scheduler(c, target), ConfigError);
  c = scheduler_config("OneCycle");
  c.cycle_min_lr = {0.1};
  c.cycle_max_lr = {1.0};
  c.cycle_first_step_size = 0;
  EXPECT_THROW(make_scheduler(c, target), ConfigError);
  EXPECT_EQ(target.lr_writes, 0);
}

}  // namespace
}  // namespace deepspeed::optim::testing
