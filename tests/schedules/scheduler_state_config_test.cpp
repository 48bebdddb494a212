// Checkpoint round trips of every schedule, and the `scheduler` section of ds_config.json as parsed by
// parse_config() (errors, defaults, per-group lists) feeding make_scheduler().
#include "deepspeed/config/config.h"
#include "tests/schedules/fake_target.h"

namespace deepspeed::optim::testing {
namespace {

config::SchedulerConfig configured(const std::string& type) {
  auto c = scheduler_config(type);
  c.warmup_num_steps = 7;
  c.total_num_steps = 40;
  c.warmup_min_lr = {0.001, 0.0};
  c.warmup_max_lr = {0.01, 0.02};
  c.cycle_min_lr = {0.001};
  c.cycle_max_lr = {0.01};
  c.cycle_first_step_size = 5;
  c.cycle_second_step_size = 8;
  c.cycle_first_stair_count = 2;
  c.decay_step_size = 3;
  c.decay_lr_rate = 0.2;
  c.decay_mom_rate = 0.05;
  c.lr_range_test_step_size = 4;
  c.lr_range_test_staircase = true;
  return c;
}

class AllSchedules : public ::testing::TestWithParam<std::string> {};
INSTANTIATE_TEST_SUITE_P(Schedules, AllSchedules,
                         ::testing::Values("WarmupLR", "WarmupDecayLR", "WarmupCosineLR", "OneCycle", "LRRangeTest"));

TEST_P(AllSchedules, StateDictRoundTripContinuesIdentically) {
  const auto c = configured(GetParam());
  FakeTarget a({0.1, 0.2});
  auto original = make_scheduler(c, a);
  for (int i = 0; i < 23; ++i) original->step();
  const nlohmann::json state = original->state_dict();
  EXPECT_EQ(state, nlohmann::json({{"last_batch_iteration", 22}}));

  // A fresh run on a fresh optimizer, restored the way DeepSpeed's engine restores a checkpoint.
  FakeTarget b({0.1, 0.2});
  auto resumed = make_scheduler(c, b);
  const int writes = b.lr_writes;
  resumed->load_state_dict(nlohmann::json::parse(state.dump()));
  EXPECT_EQ(resumed->last_batch_iteration(), 22);
  EXPECT_EQ(b.lr_writes, writes);  // loading writes nothing; the next step() does
  for (int i = 0; i < 30; ++i) {
    original->step();
    resumed->step();
    EXPECT_EQ(b.lrs(), a.lrs()) << "step " << i;
    EXPECT_EQ(b.beta1(), a.beta1()) << "step " << i;
    EXPECT_EQ(b.beta2(), a.beta2()) << "step " << i;
    EXPECT_EQ(resumed->get_last_lr(), original->get_last_lr());
  }
}

TEST(StateDict, MalformedStateIsAUsageError) {
  FakeTarget target({0.1, 0.2});
  auto s = make_scheduler(configured("WarmupLR"), target);
  EXPECT_THROW(s->load_state_dict(nlohmann::json::object()), UsageError);
  EXPECT_THROW(s->load_state_dict({{"last_batch_iteration", "3"}}), UsageError);
  EXPECT_THROW(s->load_state_dict(nlohmann::json::array()), UsageError);
}

config::Config parse(const std::string& scheduler_json) {
  const auto json = config::Json::parse(R"({"train_batch_size": 8, "scheduler": )" + scheduler_json + "}");
  return config::parse_config(json, "ds_config.json", 1);
}

// The one-line error parse() throws, or "" when it parses.
std::string parse_error(const std::string& scheduler_json) {
  try {
    parse(scheduler_json);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(SchedulerConfig, DefaultsMatchDeepSpeed) {
  const auto c = parse(R"({"type": "WarmupLR"})").scheduler;
  EXPECT_EQ(c.type, "WarmupLR");
  EXPECT_EQ(c.warmup_min_lr, std::vector<double>{0.0});
  EXPECT_TRUE(c.warmup_max_lr.empty());  // WarmupLR then uses the optimizer's lr
  EXPECT_EQ(c.warmup_num_steps, 1000);
  EXPECT_EQ(c.warmup_type, "log");
  EXPECT_EQ(c.last_batch_iteration, -1);
  const auto o = parse(R"({"type": "OneCycle", "params": {"cycle_min_lr": 0.1, "cycle_max_lr": [1, 2]}})").scheduler;
  EXPECT_EQ(o.cycle_min_lr, std::vector<double>{0.1});
  EXPECT_EQ(o.cycle_max_lr, (std::vector<double>{1.0, 2.0}));
  EXPECT_EQ(o.cycle_first_step_size, 2000);
  EXPECT_FALSE(o.cycle_second_step_size.has_value());
  EXPECT_EQ(o.cycle_first_stair_count, 0);
  EXPECT_EQ(o.decay_step_size, 0);
  EXPECT_TRUE(o.cycle_momentum);
  EXPECT_EQ(o.cycle_min_mom, std::vector<double>{0.8});
  EXPECT_EQ(o.cycle_max_mom, std::vector<double>{0.9});
  const auto r = parse(R"({"type": "LRRangeTest"})").scheduler;
  EXPECT_EQ(r.lr_range_test_min_lr, std::vector<double>{1e-3});
  EXPECT_EQ(r.lr_range_test_step_size, 2000);
  EXPECT_EQ(r.lr_range_test_step_rate, 1.0);
  EXPECT_FALSE(r.lr_range_test_staircase);
  const auto w = parse(R"({"type": "WarmupCosineLR", "params": {"total_num_steps": 10}})").scheduler;
  EXPECT_EQ(w.warmup_min_ratio, 0.0);
  EXPECT_EQ(w.cos_min_ratio, 0.0001);
}

TEST(SchedulerConfig, Errors) {
  EXPECT_EQ(parse_error(R"({"type": "WarmupDecayLR", "params": {"warmup_num_steps": 10}})"),
            "ds_config.json: scheduler.params.total_num_steps: required by WarmupDecayLR");
  EXPECT_EQ(parse_error(R"({"type": "WarmupCosineLR"})"),
            "ds_config.json: scheduler.params.total_num_steps: required by WarmupCosineLR");
  EXPECT_EQ(parse_error(R"({"type": "WarmupLR", "params": {"warmup_max_rl": 0.1}})"),
            "ds_config.json: scheduler.params.warmup_max_rl: unknown key (did you mean "
            "\"scheduler.params.warmup_max_lr\"?)");
  const std::string type = parse_error(R"({"type": "WarmupLR", "params": {"warmup_type": "lienar"}})");
  EXPECT_EQ(type.rfind("ds_config.json: scheduler.params.warmup_type: ", 0), 0u) << type;
  EXPECT_NE(type.find("did you mean \"linear\""), std::string::npos) << type;
  EXPECT_NE(parse_error(R"({"type": "WarmupLR", "params": {"warmup_num_steps": 0}})")
                .find("scheduler.params.warmup_num_steps"),
            std::string::npos);
  EXPECT_EQ(parse_error(R"({"type": "OneCycle", "params": {"cycle_min_lr": 0.1}})"),
            "ds_config.json: scheduler.params.cycle_max_lr: required by OneCycle");
  // A key of another schedule is unknown here, as it is an unexpected keyword argument in DeepSpeed.
  EXPECT_NE(parse_error(R"({"type": "WarmupLR", "params": {"total_num_steps": 10}})").find("unknown key"),
            std::string::npos);
  EXPECT_NE(parse_error(R"({"type": "OneCycle", "params": {"cycle_min_lr": [], "cycle_max_lr": 1}})")
                .find("scheduler.params.cycle_min_lr"),
            std::string::npos);
  EXPECT_NE(parse_error(R"({"type": "WarmupLR", "params": {"warmup_min_lr": "0"}})")
                .find("scheduler.params.warmup_min_lr"),
            std::string::npos);
  EXPECT_NE(parse_error(R"({"type": "Warmuplr"})").find("did you mean \"WarmupLR\""), std::string::npos);
  EXPECT_NE(parse_error(R"({"type": "StepLR"})").find("torch.optim.lr_scheduler"), std::string::npos);
  for (const char* line : {R"({"type": "WarmupDecayLR", "params": {"total_num_steps": 5}})",
                           R"({"type": "OneCycle", "params": {"cycle_min_lr": 0, "cycle_max_lr": 1,
                                                              "cycle_second_step_size": 0}})"}) {
    EXPECT_EQ(parse_error(line), "") << line;
  }
}

TEST(SchedulerConfig, ParsedConfigDrivesTheSchedule) {
  const auto c = parse(R"({"type": "WarmupDecayLR", "params": {"warmup_min_lr": [0, 0.001],
      "warmup_max_lr": 0.01, "warmup_num_steps": 10, "total_num_steps": 20, "warmup_type": "linear"}})");
  FakeTarget target({0.5, 0.5});
  auto s = make_scheduler(c.scheduler, target, c.source);
  expect_lr_at(*s, target, 5, {0.005, 0.001 + 0.009 * 0.5});
  expect_lr_at(*s, target, 15, {0.005, 0.001 + 0.009 * 0.5});
  FakeTarget three({0.5, 0.5, 0.5});
  try {
    make_scheduler(c.scheduler, three, c.source);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("ds_config.json: scheduler.params.warmup_min_lr: ", 0), 0u) << e.what();
  }
}

}  // namespace
}  // namespace deepspeed::optim::testing
