// Unit tests: hostfile parsing, include/exclude resolution, --num_nodes/--num_gpus, CUDA_VISIBLE_DEVICES rule.
#include <gtest/gtest.h>

#include "deepspeed/util/error.h"
#include "tools/launcher/options.h"
#include "tools/launcher/resources.h"

namespace deepspeed::launcher {
namespace {

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const UsageError& e) {
    return e.what();
  }
  return "<no error>";
}

ResourcePool pool_of(std::vector<HostSlots> hosts) { return {std::move(hosts), "hostfile hf"}; }

TEST(LauncherHostfile, ParsesHostsInOrderSkippingCommentsAndBlankLines) {
  const auto pool = parse_hostfile("# cluster\n\nworker-1 slots=4\n  worker-0\tslots=2 max_slots=8 \r\n# end\n", "/h");
  ASSERT_EQ(pool.hosts.size(), 2u);
  EXPECT_EQ(pool.hosts[0].host, "worker-1");
  EXPECT_EQ(pool.hosts[0].slots, 4);
  EXPECT_EQ(pool.hosts[1].host, "worker-0");
  EXPECT_EQ(pool.hosts[1].slots, 2);
  EXPECT_EQ(pool.source, "hostfile /h");
}

TEST(LauncherHostfile, BadLineNamesFileAndLine) {
  const auto e = error_of([] { parse_hostfile("a slots=1\n\nb slots=two\n", "/tmp/hf"); });
  EXPECT_NE(e.find("hostfile /tmp/hf line 3"), std::string::npos) << e;
  EXPECT_NE(e.find("expected 'HOST slots=N'"), std::string::npos) << e;
  EXPECT_NE(error_of([] { parse_hostfile("worker-0\n", "hf"); }).find("line 1"), std::string::npos);
  EXPECT_NE(error_of([] { parse_hostfile("worker-0slots=1\n", "hf"); }).find("line 1"), std::string::npos);
}

TEST(LauncherHostfile, DuplicateEmptyZeroSlotsAndDashHostsAreErrors) {
  const auto dup = error_of([] { parse_hostfile("a slots=1\nb slots=1\na slots=2\n", "hf"); });
  EXPECT_NE(dup.find("line 3: host 'a' is listed twice (first on line 1)"), std::string::npos) << dup;
  EXPECT_NE(error_of([] { parse_hostfile("# nothing\n\n", "hf"); }).find("lists no hosts"), std::string::npos);
  EXPECT_NE(error_of([] { parse_hostfile("a slots=0\n", "hf"); }).find("slots"), std::string::npos);
  EXPECT_NE(error_of([] { parse_hostfile("-oProxyCommand=x slots=1\n", "hf"); }).find("must not start with '-'"),
            std::string::npos);
}

TEST(LauncherNodeSpecs, ParsesAndMergesSpecs) {
  const auto specs = parse_node_specs("worker-0@worker-1:2,0@worker-1:0,1", "--include");
  ASSERT_EQ(specs.size(), 2u);
  EXPECT_EQ(specs[0].host, "worker-0");
  EXPECT_TRUE(specs[0].slots.empty());
  EXPECT_EQ(specs[1].slots, (std::vector<int>{0, 1, 2}));
  EXPECT_TRUE(parse_node_specs("a:1@a", "--include")[0].slots.empty());  // the whole host wins
  EXPECT_NE(error_of([] { parse_node_specs("a:x", "--include"); }).find("--include: slot 'x' of host 'a'"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_node_specs("a:", "--exclude"); }).find("--exclude: expected slot numbers"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_node_specs("a@@b", "--include"); }).find("empty node spec"), std::string::npos);
  EXPECT_NE(error_of([] { parse_node_specs(":1", "--include"); }).find("missing host name"), std::string::npos);
}

TEST(LauncherResolve, NoFilterUsesEverySlotInPoolOrder) {
  const auto world = resolve_resources(pool_of({{"b", 2}, {"a", 1}}), "", "");
  EXPECT_EQ(world, (WorldInfo{{"b", {0, 1}}, {"a", {0}}}));
}

TEST(LauncherResolve, IncludeKeepsPoolOrderNotSpecOrder) {
  const auto pool = pool_of({{"worker-0", 4}, {"worker-1", 4}, {"worker-2", 4}});
  EXPECT_EQ(resolve_resources(pool, "worker-2:1@worker-0", ""), (WorldInfo{{"worker-0", {0, 1, 2, 3}}, {"worker-2", {1}}}));
  EXPECT_EQ(resolve_resources(pool, "worker-1:3,1", ""), (WorldInfo{{"worker-1", {1, 3}}}));
}

TEST(LauncherResolve, ExcludeRemovesSlotsAndEmptyHosts) {
  const auto pool = pool_of({{"worker-0", 2}, {"worker-1", 2}});
  EXPECT_EQ(resolve_resources(pool, "", "worker-1:0"), (WorldInfo{{"worker-0", {0, 1}}, {"worker-1", {1}}}));
  EXPECT_EQ(resolve_resources(pool, "", "worker-0"), (WorldInfo{{"worker-1", {0, 1}}}));
  EXPECT_EQ(resolve_resources(pool, "", "worker-1:0,1"), (WorldInfo{{"worker-0", {0, 1}}}));
}

TEST(LauncherResolve, UnknownHostsAndSlotsAreNamed) {
  const ResourcePool local{{{"localhost", 2}}, "local resources (2 GPUs detected)"};
  const auto slot = error_of([&] { resolve_resources(local, "localhost:7", ""); });
  EXPECT_NE(slot.find("--include: host 'localhost' has no slot 7"), std::string::npos) << slot;
  EXPECT_NE(slot.find("slots 0-1"), std::string::npos) << slot;
  const auto host = error_of([&] { resolve_resources(pool_of({{"a", 1}, {"b", 1}}), "", "c"); });
  EXPECT_NE(host.find("--exclude: host 'c' is not in hostfile hf (hosts: a, b)"), std::string::npos) << host;
  const auto cvd = error_of([&] { resolve_resources(local, "localhost:5", "", "--include (from CUDA_VISIBLE_DEVICES)"); });
  EXPECT_NE(cvd.find("(from CUDA_VISIBLE_DEVICES)"), std::string::npos) << cvd;
  EXPECT_NE(error_of([&] { resolve_resources(local, "", "localhost"); }).find("leaves no slots"), std::string::npos);
  EXPECT_NE(error_of([&] { resolve_resources(local, "localhost", "localhost:1"); }).find("mutually exclusive"),
            std::string::npos);
}

TEST(LauncherResolve, NumNodesAndNumGpusLimitTheWorld) {
  const auto pool = pool_of({{"a", 4}, {"b", 2}, {"c", 4}});
  const auto all = resolve_resources(pool, "", "");
  EXPECT_EQ(limit_resources(all, 2, -1, pool), (WorldInfo{{"a", {0, 1, 2, 3}}, {"b", {0, 1}}}));
  EXPECT_EQ(limit_resources(all, 1, 3, pool), (WorldInfo{{"a", {0, 1, 2}}}));
  EXPECT_NE(error_of([&] { limit_resources(all, 4, -1, pool); }).find("--num_nodes 4: hostfile hf has only 3 hosts"),
            std::string::npos);
  EXPECT_NE(error_of([&] { limit_resources(all, -1, 3, pool); }).find("--num_gpus 3: host 'b' has only 2 slots"),
            std::string::npos);
}

TEST(LauncherLocalPool, GpuModeUsesDetectedCountCpuModeUsesRankSlots) {
  EXPECT_EQ(local_pool(false, 8, -1, "").hosts[0].slots, 8);
  EXPECT_EQ(local_pool(true, 0, -1, "").hosts[0].slots, 1);
  EXPECT_EQ(local_pool(true, 0, 3, "").hosts[0].slots, 3);
  EXPECT_EQ(local_pool(true, 0, -1, "localhost:0,2").hosts[0].slots, 3);
  const auto pool = local_pool(true, 0, -1, "localhost:0,2");
  EXPECT_EQ(resolve_resources(pool, "localhost:0,2", ""), (WorldInfo{{"localhost", {0, 2}}}));
}

TEST(LauncherVisibleDevices, BecomesIncludeOnlyWithoutHostfileOrResourceFlags) {
  LaunchOptions o;
  auto rule = visible_devices_rule("1,3", false, o);
  EXPECT_EQ(rule.include, "localhost:1,3");
  EXPECT_EQ(rule.message, "Detected VISIBLE_DEVICES=1,3: setting --include=localhost:1,3");

  o.num_gpus = 2;
  rule = visible_devices_rule("1,3", false, o);
  EXPECT_TRUE(rule.include.empty());
  EXPECT_EQ(rule.message.rfind("Detected VISIBLE_DEVICES=1,3 but ignoring it because one or several of "
                               "--include/--exclude/--num_gpus/--num_nodes cl args were used.", 0), 0u)
      << rule.message;

  for (auto set : {+[](LaunchOptions& x) { x.include = "localhost:0"; }, +[](LaunchOptions& x) { x.exclude = "localhost:0"; },
                   +[](LaunchOptions& x) { x.num_nodes = 1; }}) {
    LaunchOptions with_flag;
    set(with_flag);
    EXPECT_TRUE(visible_devices_rule("0", false, with_flag).include.empty());
  }
  EXPECT_TRUE(visible_devices_rule("1,3", true, LaunchOptions{}).message.empty());  // hostfile: rule is off
  EXPECT_TRUE(visible_devices_rule("", false, LaunchOptions{}).message.empty());
}

TEST(LauncherDescribeSlots, RangesAndLists) {
  EXPECT_EQ(describe_slots({0, 1, 2}), "0-2");
  EXPECT_EQ(describe_slots({0, 2}), "0,2");
  EXPECT_EQ(describe_slots({5}), "5");
  EXPECT_EQ(describe_slots({}), "none");
}

}  // namespace
}  // namespace deepspeed::launcher
