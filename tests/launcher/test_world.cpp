// Unit tests: world info encoding and per-rank environment (tools/launcher/world.h).
#include <gtest/gtest.h>

#include <map>

#include "deepspeed/util/error.h"
#include "tools/launcher/world.h"

namespace deepspeed::launcher {
namespace {

std::map<std::string, std::string> as_map(const EnvVars& env) { return {env.begin(), env.end()}; }

TEST(LauncherWorldInfo, EncodesExactlyLikeDeepSpeed) {
  // base64.urlsafe_b64encode(json.dumps({"worker-0": [0, 1], "worker-1": [0]}).encode())
  const WorldInfo world{{"worker-0", {0, 1}}, {"worker-1", {0}}};
  EXPECT_EQ(encode_world_info(world), "eyJ3b3JrZXItMCI6IFswLCAxXSwgIndvcmtlci0xIjogWzBdfQ==");
  EXPECT_EQ(encode_world_info({{"a", {0}}}), "eyJhIjogWzBdfQ==");
}

TEST(LauncherWorldInfo, RoundTripsKeepingNodeOrder) {
  const WorldInfo world{{"zeta", {3, 1}}, {"alpha", {0}}, {"host with \"quotes\"", {0, 1, 2}}};
  EXPECT_EQ(decode_world_info(encode_world_info(world)), world);
  // Standard alphabet and missing padding are accepted too.
  EXPECT_EQ(decode_world_info("eyJhIjogWzBdfQ"), (WorldInfo{{"a", {0}}}));
}

TEST(LauncherWorldInfo, GarbageIsAUsageError) {
  EXPECT_THROW(decode_world_info("!!!"), UsageError);
  EXPECT_THROW(decode_world_info("bm90IGpzb24="), UsageError);  // "not json"
  EXPECT_THROW(decode_world_info(encode_world_info({{"a", {}}})), UsageError);
}

TEST(LauncherRankPlan, TwoNodesTimesTwoSlots) {
  const WorldInfo world{{"node-a", {0, 1}}, {"node-b", {2, 3}}};
  for (int node = 0; node < 2; ++node) {
    const auto ranks = plan_node_ranks(world, node, "node-a", 29501, true);
    ASSERT_EQ(ranks.size(), 2u);
    for (int local = 0; local < 2; ++local) {
      const auto env = as_map(ranks[static_cast<std::size_t>(local)].env);
      EXPECT_EQ(env.at("RANK"), std::to_string(node * 2 + local));
      EXPECT_EQ(env.at("LOCAL_RANK"), std::to_string(local));
      EXPECT_EQ(env.at("CROSS_RANK"), std::to_string(node));
      EXPECT_EQ(env.at("CROSS_SIZE"), "2");
      EXPECT_EQ(env.at("WORLD_SIZE"), "4");
      EXPECT_EQ(env.at("LOCAL_SIZE"), "2");
      EXPECT_EQ(env.at("MASTER_ADDR"), "node-a");
      EXPECT_EQ(env.at("MASTER_PORT"), "29501");
      EXPECT_EQ(env.at("CUDA_VISIBLE_DEVICES"), node == 0 ? "0,1" : "2,3");
      EXPECT_EQ(ranks[static_cast<std::size_t>(local)].slot, node * 2 + local);
    }
  }
}

TEST(LauncherRankPlan, UnevenNodesUsePositionOnNodeAsLocalRank) {
  // DeepSpeed computes LOCAL_RANK = RANK % LOCAL_SIZE, which gives 1 and 0 here.
  const WorldInfo world{{"a", {0}}, {"b", {0, 1}}};
  const auto ranks = plan_node_ranks(world, 1, "a", 1, false);
  EXPECT_EQ(as_map(ranks[0].env).at("RANK"), "1");
  EXPECT_EQ(as_map(ranks[0].env).at("LOCAL_RANK"), "0");
  EXPECT_EQ(as_map(ranks[1].env).at("RANK"), "2");
  EXPECT_EQ(as_map(ranks[1].env).at("LOCAL_RANK"), "1");
  EXPECT_EQ(as_map(ranks[1].env).count("CUDA_VISIBLE_DEVICES"), 0u);  // CPU mode leaves it alone
}

TEST(LauncherRankArgv, LocalRankFirstUnlessDisabled) {
  EXPECT_EQ(rank_argv("./t", {"--x", "1"}, 3, false), (std::vector<std::string>{"./t", "--local_rank=3", "--x", "1"}));
  EXPECT_EQ(rank_argv("./t", {"--x"}, 3, true), (std::vector<std::string>{"./t", "--x"}));
}

TEST(LauncherEnvironment, MergeReplacesInPlaceAndAppends) {
  const std::vector<std::string> parent{"A=1", "RANK=old", "AB=2"};
  EXPECT_EQ(merge_environment(parent, {{"RANK", "0"}, {"NEW", "x=y"}}),
            (std::vector<std::string>{"A=1", "RANK=0", "AB=2", "NEW=x=y"}));
  EXPECT_STREQ(find_env(parent, "A"), "1");
  EXPECT_EQ(find_env(parent, "RAN"), nullptr);
}

TEST(LauncherEnvironment, NvlsDisabledUnlessTheUserChose) {
  EXPECT_EQ(default_rank_env({"PATH=/bin"}), (EnvVars{{"NCCL_NVLS_ENABLE", "0"}}));
  EXPECT_TRUE(default_rank_env({"NCCL_NVLS_ENABLE=1"}).empty());
}

}  // namespace
}  // namespace deepspeed::launcher
