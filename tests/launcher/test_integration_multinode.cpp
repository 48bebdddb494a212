// Integration tests: multi-node launches through the real `deepspeed` binary, with fake_ssh.sh installed as
// `ssh` first on PATH. Each "remote" agent runs locally in a clean environment (env -i), so only what the
// launcher exports reaches the ranks.
#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>

#include "harness.h"

namespace deepspeed::launcher::testing {
namespace {

namespace fs = std::filesystem;

class MultiNodeTest : public LauncherTest {
 protected:
  void SetUp() override {
    LauncherTest::SetUp();
    fs::create_directories(dir() + "/bin");
    fs::copy_file(DS_FAKE_SSH_SCRIPT, dir() + "/bin/ssh");
    fs::permissions(dir() + "/bin/ssh", fs::perms::owner_all);
    ssh_log_ = dir() + "/ssh.log";
  }

  EnvChanges env(EnvChanges extra = {}) const {
    const char* path = std::getenv("PATH");
    EnvChanges changes{{"PATH", dir() + "/bin:" + (path ? path : "/usr/bin:/bin")}, {"FAKE_SSH_LOG", ssh_log_}};
    for (auto& [k, v] : extra) changes[k] = v;
    return changes;
  }

  std::vector<std::string> args(const std::string& hostfile, const std::vector<std::string>& rank_args) const {
    std::vector<std::string> a{"-H", hostfile};
    for (const auto& s : fake_rank()) a.push_back(s);
    a.insert(a.end(), rank_args.begin(), rank_args.end());
    return a;
  }

  std::string ssh_log_;
};

TEST_F(MultiNodeTest, TwoHostsGiveThreeRanksNodeByNode) {
  const std::string hostfile = write_file("hostfile", "# two nodes\nhostA slots=2\nhostB slots=1\n");
  const std::string env_file = write_file("ds_env", "FROM_ENV_FILE=it's here\n");
  const auto r = run(args(hostfile, {"--act", "exit:0", "a b"}),
                     env({{"NCCL_LAUNCHER_TEST", "exported"}, {"UNEXPORTED_TEST_VAR", "stays home"}, {"DS_ENV_FILE", env_file}}));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const std::vector<std::string> cross_rank{"0", "0", "1"}, local_rank{"0", "1", "0"}, local_size{"2", "2", "1"};
  const std::vector<std::string> host{"hostA", "hostA", "hostB"};
  for (int rank = 0; rank < 3; ++rank) {
    auto e = rank_env(rank);
    SCOPED_TRACE(rank);
    EXPECT_EQ(e["RANK"], std::to_string(rank));
    EXPECT_EQ(e["WORLD_SIZE"], "3");
    EXPECT_EQ(e["CROSS_SIZE"], "2");
    EXPECT_EQ(e["CROSS_RANK"], cross_rank[static_cast<std::size_t>(rank)]);
    EXPECT_EQ(e["LOCAL_RANK"], local_rank[static_cast<std::size_t>(rank)]);
    EXPECT_EQ(e["LOCAL_SIZE"], local_size[static_cast<std::size_t>(rank)]);
    EXPECT_EQ(e["MASTER_ADDR"], "hostA");
    EXPECT_EQ(e["MASTER_PORT"], std::to_string(port()));
    EXPECT_EQ(e["FAKE_SSH_HOST"], host[static_cast<std::size_t>(rank)]);
    EXPECT_EQ(e["NCCL_LAUNCHER_TEST"], "exported");
    EXPECT_EQ(e["FROM_ENV_FILE"], "it's here");
    EXPECT_EQ(e.count("UNEXPORTED_TEST_VAR"), 0u);
    EXPECT_EQ(e["NCCL_NVLS_ENABLE"], "0");
    const auto argv = rank_argv(rank);
    ASSERT_EQ(argv.size(), 7u);
    EXPECT_EQ(argv[1], "--local_rank=" + local_rank[static_cast<std::size_t>(rank)]);
    EXPECT_EQ(argv[6], "a b");
  }
  const auto calls = lines(read_text(ssh_log_));
  ASSERT_EQ(calls.size(), 4u) << read_text(ssh_log_);  // two reachability checks, two launches
  EXPECT_EQ(std::count_if(calls.begin(), calls.end(), [](const std::string& c) { return c == "hostA true"; }), 1);
  EXPECT_EQ(std::count_if(calls.begin(), calls.end(), [](const std::string& c) { return c == "hostB true"; }), 1);
}

// With a 20 s grace period, a quick exit proves the first host's agent stopped its ranks on its own when the
// launcher closed its ssh stdin, rather than by the SIGKILL fallback.
TEST_F(MultiNodeTest, RankFailingOnTheSecondHostStopsTheFirstHost) {
  const std::string hostfile = write_file("hostfile", "hostA slots=2\nhostB slots=1\n");
  const pid_t launcher = start(args(hostfile, {"--act", "sleep", "--act-rank", "2:exit:4:500", "--grandchild"}),
                               env({{"DS_KILL_GRACE_SECONDS", "20"}}));
  ASSERT_TRUE(wait_for_files({"rank0.pid", "rank1.pid", "rank2.pid", "grandchild0.pid", "grandchild1.pid"}));
  const auto pids = all_recorded_pids();
  const auto r = wait(launcher);
  EXPECT_EQ(r.exit_code, 4) << r.out << r.err;
  EXPECT_LT(r.seconds, 10);
  EXPECT_NE(r.out.find("exits with return code = 4"), std::string::npos) << r.out;
  expect_all_gone(pids);
}

TEST_F(MultiNodeTest, SigtermToTheLauncherStopsEveryNode) {
  const std::string hostfile = write_file("hostfile", "hostA slots=1\nhostB slots=2\n");
  const pid_t launcher = start(args(hostfile, {"--act", "sleep", "--grandchild"}), env({{"DS_KILL_GRACE_SECONDS", "20"}}));
  ASSERT_TRUE(wait_for_files({"rank0.pid", "rank1.pid", "rank2.pid", "grandchild2.pid"}));
  const auto pids = all_recorded_pids();
  ::kill(launcher, SIGTERM);
  const auto r = wait(launcher);
  EXPECT_EQ(r.exit_code, 143) << r.out << r.err;
  EXPECT_LT(r.seconds, 10);
  expect_all_gone(pids);
}

TEST_F(MultiNodeTest, UnreachableHostIsNamedWithTheHostfile) {
  const std::string hostfile = write_file("hostfile", "hostA slots=1\nunreachable-1 slots=1\n");
  const auto r = run(args(hostfile, {}), env());
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  const auto err = lines(r.err);
  ASSERT_EQ(err.size(), 1u) << r.err;
  EXPECT_NE(err[0].find("host=unreachable-1 was not reachable via ssh"), std::string::npos) << err[0];
  EXPECT_NE(err[0].find(hostfile), std::string::npos) << err[0];
  EXPECT_FALSE(fs::exists(out_dir() + "/rank0.txt"));  // nothing was launched
}

TEST_F(MultiNodeTest, IncludeAndNoSshCheckSelectSlotsAcrossHosts) {
  const std::string hostfile = write_file("hostfile", "hostA slots=4\nhostB slots=4\nhostC slots=4\n");
  auto a = args(hostfile, {"--act", "exit:0"});
  a.insert(a.begin(), {"--include", "hostC:2@hostB:1,3", "--no_ssh_check", "--master_addr", "10.1.2.3"});
  const auto r = run(a, env());
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const std::vector<std::string> cross_rank{"0", "0", "1"}, local_rank{"0", "1", "0"}, host{"hostB", "hostB", "hostC"};
  for (int rank = 0; rank < 3; ++rank) {
    auto e = rank_env(rank);
    SCOPED_TRACE(rank);
    EXPECT_EQ(e["CROSS_RANK"], cross_rank[static_cast<std::size_t>(rank)]);
    EXPECT_EQ(e["LOCAL_RANK"], local_rank[static_cast<std::size_t>(rank)]);
    EXPECT_EQ(e["FAKE_SSH_HOST"], host[static_cast<std::size_t>(rank)]);
    EXPECT_EQ(e["WORLD_SIZE"], "3");
    EXPECT_EQ(e["MASTER_ADDR"], "10.1.2.3");
  }
  EXPECT_FALSE(fs::exists(out_dir() + "/rank3.txt"));
  const auto calls = lines(read_text(ssh_log_));
  EXPECT_EQ(calls.size(), 2u) << read_text(ssh_log_);  // no reachability checks
}

}  // namespace
}  // namespace deepspeed::launcher::testing
