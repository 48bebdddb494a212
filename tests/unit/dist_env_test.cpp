#include <gtest/gtest.h>

#include <map>

#include "deepspeed/comm/dist_env.h"
#include "deepspeed/util/error.h"

using deepspeed::comm::DistEnv;
using deepspeed::comm::resolve_dist_env;

namespace {

deepspeed::comm::EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars](const char* name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

}  // namespace

TEST(DistEnvTest, NoVariablesMeansOneProcess) {
  const DistEnv d = resolve_dist_env(env_of({}));
  EXPECT_EQ(d.rank, 0);
  EXPECT_EQ(d.world_size, 1);
  EXPECT_EQ(d.source, "none");
}

TEST(DistEnvTest, LauncherVariables) {
  const DistEnv d = resolve_dist_env(env_of({{"RANK", "3"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"},
                                             {"LOCAL_SIZE", "2"}, {"MASTER_ADDR", "10.1.2.3"}, {"MASTER_PORT", "29600"}}));
  EXPECT_EQ(d.rank, 3);
  EXPECT_EQ(d.world_size, 4);
  EXPECT_EQ(d.local_rank, 1);
  EXPECT_EQ(d.master_addr, "10.1.2.3");
  EXPECT_EQ(d.master_port, 29600);
}

TEST(DistEnvTest, OpenMpiAndSlurm) {
  auto d = resolve_dist_env(env_of({{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "2"},
                                    {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}}));
  EXPECT_EQ(d.source, "OpenMPI");
  EXPECT_EQ(d.rank, 1);
  EXPECT_EQ(d.master_addr, "127.0.0.1");
  d = resolve_dist_env(env_of({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "1"},
                               {"SLURM_JOB_NODELIST", "gpu[07-10],login1"}}));
  EXPECT_EQ(d.source, "Slurm");
  EXPECT_EQ(d.rank, 5);
  EXPECT_EQ(d.local_rank, 1);
  EXPECT_EQ(d.master_addr, "gpu07");
}

TEST(DistEnvTest, InconsistentVariablesAreUsageErrors) {
  EXPECT_THROW(resolve_dist_env(env_of({{"RANK", "0"}})), deepspeed::UsageError);
  EXPECT_THROW(resolve_dist_env(env_of({{"RANK", "2"}, {"WORLD_SIZE", "2"}})), deepspeed::UsageError);
  EXPECT_THROW(resolve_dist_env(env_of({{"RANK", "x"}, {"WORLD_SIZE", "2"}})), deepspeed::UsageError);
  try {
    resolve_dist_env(env_of({{"WORLD_SIZE", "2"}}));
    FAIL();
  } catch (const deepspeed::UsageError& e) {
    EXPECT_STREQ(e.what(), "environment variable RANK is not set but WORLD_SIZE is");
  }
}

TEST(DistEnvTest, SlurmHostLists) {
  EXPECT_EQ(deepspeed::comm::first_slurm_host("node1,node2"), "node1");
  EXPECT_EQ(deepspeed::comm::first_slurm_host("n[003,7-9]"), "n003");
  EXPECT_EQ(deepspeed::comm::first_slurm_host("single"), "single");
}

TEST(DistEnvTest, TimeoutFromDeepSpeedTimeoutMinutes) {
  EXPECT_EQ(deepspeed::comm::collective_timeout(env_of({})).count(), 30 * 60 * 1000);
  EXPECT_EQ(deepspeed::comm::collective_timeout(env_of({{"DEEPSPEED_TIMEOUT", "0.5"}})).count(), 30000);
  EXPECT_THROW(deepspeed::comm::collective_timeout(env_of({{"DEEPSPEED_TIMEOUT", "soon"}})), deepspeed::UsageError);
}
