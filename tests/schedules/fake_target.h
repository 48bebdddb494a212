#pragma once
// A ScheduleTarget that records what schedules write, and closeness checks for closed-form expectations.
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "deepspeed/config/config.h"
#include "deepspeed/optim/lr_schedules.h"

namespace deepspeed::optim::testing {

/// Which momentum hyperparameter the fake optimizer has: Adam's betas, SGD's momentum, or none.
enum class Momentum { kBetas, kSgd, kNone };

class FakeTarget : public ScheduleTarget {
 public:
  FakeTarget(std::vector<double> lrs, Momentum kind = Momentum::kBetas)
      : lrs_(std::move(lrs)), beta1_(lrs_.size(), 0.9), beta2_(lrs_.size(), 0.999), kind_(kind) {}

  std::size_t num_groups() const override { return lrs_.size(); }
  double lr(std::size_t g) const override { return lrs_.at(g); }
  void set_lr(std::size_t g, double lr) override { lrs_.at(g) = lr; ++lr_writes; }
  bool has_momentum() const override { return kind_ != Momentum::kNone; }
  double momentum(std::size_t g) const override { return beta1_.at(g); }
  void set_momentum(std::size_t g, double m) override { beta1_.at(g) = m; ++momentum_writes; }
  bool has_betas() const override { return kind_ == Momentum::kBetas; }
  void set_beta2(std::size_t g, double b) override { beta2_.at(g) = b; ++beta2_writes; }

  const std::vector<double>& lrs() const { return lrs_; }
  const std::vector<double>& beta1() const { return beta1_; }
  const std::vector<double>& beta2() const { return beta2_; }

  int lr_writes = 0;
  int momentum_writes = 0;
  int beta2_writes = 0;

 private:
  std::vector<double> lrs_;
  std::vector<double> beta1_;
  std::vector<double> beta2_;
  Momentum kind_;
};

/// The schedules reorder nothing relative to DeepSpeed, but the tests' formulas are written the textbook
/// way (e.g. ln(t+1)/ln(W) instead of ln(t+1)·(1/ln(W))), so compare to a few ulps of relative error.
inline void expect_close(const std::vector<double>& actual, const std::vector<double>& expected,
                         const std::string& what = "") {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  for (std::size_t i = 0; i < actual.size(); ++i) {
    EXPECT_NEAR(actual[i], expected[i], 1e-13 * std::max(1.0, std::abs(expected[i]))) << what << " group " << i;
  }
}

/// Steps `scheduler` to iteration `t` explicitly and checks both what it wrote and get_last_lr().
inline void expect_lr_at(LRScheduler& scheduler, const FakeTarget& target, std::int64_t t,
                         const std::vector<double>& expected) {
  scheduler.step(t);
  const std::string what = "t=" + std::to_string(t);
  expect_close(target.lrs(), expected, what);
  expect_close(scheduler.get_last_lr(), expected, what);
  EXPECT_EQ(scheduler.last_batch_iteration(), t);
}

inline config::SchedulerConfig scheduler_config(const std::string& type) {
  config::SchedulerConfig c;
  c.type = type;
  return c;
}

}  // namespace deepspeed::optim::testing
