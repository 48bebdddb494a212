// Integration tests: single-node launches through the real `deepspeed` binary (CPU mode, fake_rank ranks).
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <regex>

#include "harness.h"

namespace deepspeed::launcher::testing {
namespace {

std::vector<std::string> operator+(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST_F(LauncherTest, ThreeCpuRanksGetTheirEnvironmentAndLocalRank) {
  const auto r = run(std::vector<std::string>{"--num_gpus", "3"} + fake_rank() + std::vector<std::string>{"--act", "exit:0", "user arg", "--x=1"},
                     {{"CUDA_VISIBLE_DEVICES", "5"}, {"LAUNCHER_TEST_MARK", "kept"}});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;
  for (int rank = 0; rank < 3; ++rank) {
    auto env = rank_env(rank);
    EXPECT_EQ(env["RANK"], std::to_string(rank));
    EXPECT_EQ(env["LOCAL_RANK"], std::to_string(rank));
    EXPECT_EQ(env["WORLD_SIZE"], "3");
    EXPECT_EQ(env["LOCAL_SIZE"], "3");
    EXPECT_EQ(env["CROSS_RANK"], "0");
    EXPECT_EQ(env["CROSS_SIZE"], "1");
    EXPECT_EQ(env["MASTER_ADDR"], "127.0.0.1");
    EXPECT_EQ(env["MASTER_PORT"], std::to_string(port()));
    EXPECT_EQ(env["NCCL_NVLS_ENABLE"], "0");
    EXPECT_EQ(env["CUDA_VISIBLE_DEVICES"], "5");  // CPU mode leaves it as it was
    EXPECT_EQ(env["LAUNCHER_TEST_MARK"], "kept");
    cpu_set_t set;
    ASSERT_EQ(sched_getaffinity(0, sizeof set, &set), 0);
    EXPECT_EQ(env["OMP_NUM_THREADS"], std::to_string(std::max(1, CPU_COUNT(&set) / 3)));  // cores split, no oversubscription
    const auto argv = rank_argv(rank);
    ASSERT_EQ(argv.size(), 8u);
    EXPECT_EQ(argv[1], "--local_rank=" + std::to_string(rank));
    EXPECT_EQ(argv[6], "user arg");
    EXPECT_EQ(argv[7], "--x=1");
  }
  EXPECT_FALSE(std::filesystem::exists(out_dir() + "/rank3.txt"));
  EXPECT_NE(r.out.find("Unable to find hostfile, will proceed with training with local resources only."), std::string::npos);
}

TEST_F(LauncherTest, DefaultCpuModeIsOneRankAndNoLocalRankDropsTheArgument) {
  const auto r = run(std::vector<std::string>{"--no_local_rank"} + fake_rank(),
                     {{"NCCL_NVLS_ENABLE", "1"}, {"OMP_NUM_THREADS", "7"}});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(rank_argv(0), fake_rank());
  EXPECT_EQ(rank_env(0)["WORLD_SIZE"], "1");
  EXPECT_EQ(rank_env(0)["NCCL_NVLS_ENABLE"], "1");  // the user's choice wins
  EXPECT_EQ(rank_env(0)["OMP_NUM_THREADS"], "7");
  EXPECT_FALSE(std::filesystem::exists(out_dir() + "/rank1.txt"));
}

TEST_F(LauncherTest, IncludeSelectsRankSlots) {
  const auto r = run(std::vector<std::string>{"--include", "localhost:0,2"} + fake_rank());
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  for (int rank = 0; rank < 2; ++rank) {
    EXPECT_EQ(rank_env(rank)["LOCAL_RANK"], std::to_string(rank));
    EXPECT_EQ(rank_env(rank)["WORLD_SIZE"], "2");
    EXPECT_EQ(rank_argv(rank)[1], "--local_rank=" + std::to_string(rank));
  }
  EXPECT_FALSE(std::filesystem::exists(out_dir() + "/rank2.txt"));
}

TEST_F(LauncherTest, VisibleDevicesBecomeTheIncludeInGpuMode) {
  const auto r = run(fake_rank(), {{"DS_ACCELERATOR", std::nullopt}, {"DS_LAUNCHER_FAKE_GPU_COUNT", "4"},
                                   {"CUDA_VISIBLE_DEVICES", "1,3"}});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("Detected VISIBLE_DEVICES=1,3: setting --include=localhost:1,3"), std::string::npos) << r.out;
  for (int rank = 0; rank < 2; ++rank) {
    EXPECT_EQ(rank_env(rank)["CUDA_VISIBLE_DEVICES"], "1,3");
    EXPECT_EQ(rank_env(rank)["LOCAL_RANK"], std::to_string(rank));
  }
  EXPECT_FALSE(std::filesystem::exists(out_dir() + "/rank2.txt"));
}

TEST_F(LauncherTest, GpuModeRanksSeeExactlyTheirNodesSelectedDevices) {
  const std::string hostfile = write_file("hostfile", "localhost slots=4\n");
  const auto r = run(std::vector<std::string>{"-H", hostfile, "--include", "localhost:1,2"} + fake_rank(),
                     {{"DS_ACCELERATOR", std::nullopt}, {"DS_LAUNCHER_FAKE_GPU_COUNT", "4"}, {"CUDA_VISIBLE_DEVICES", "0"}});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out.find("Detected VISIBLE_DEVICES"), std::string::npos);  // the rule is off with a hostfile
  for (int rank = 0; rank < 2; ++rank) {
    EXPECT_EQ(rank_env(rank)["CUDA_VISIBLE_DEVICES"], "1,2");
    EXPECT_EQ(rank_env(rank)["LOCAL_RANK"], std::to_string(rank));
  }
}

TEST_F(LauncherTest, VisibleDevicesAreIgnoredWhenResourcesAreExplicit) {
  const auto r = run(std::vector<std::string>{"--num_gpus", "2"} + fake_rank(),
                     {{"DS_ACCELERATOR", std::nullopt}, {"DS_LAUNCHER_FAKE_GPU_COUNT", "4"}, {"CUDA_VISIBLE_DEVICES", "3"}});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("Detected VISIBLE_DEVICES=3 but ignoring it because"), std::string::npos) << r.out;
  EXPECT_EQ(rank_env(0)["CUDA_VISIBLE_DEVICES"], "0,1");
  EXPECT_EQ(rank_env(1)["CUDA_VISIBLE_DEVICES"], "0,1");
}

// A long grace period makes "everything stopped quickly" prove that SIGTERM reached every process group:
// anything that needed the SIGKILL fallback would take 20 s.
const EnvChanges kLongGrace{{"DS_KILL_GRACE_SECONDS", "20"}};

TEST_F(LauncherTest, FailingRankStopsEveryProcessAndItsCodeIsReturned) {
  const pid_t launcher = start(std::vector<std::string>{"--num_gpus", "3"} + fake_rank() +
                                   std::vector<std::string>{"--act", "sleep", "--act-rank", "1:exit:3:700", "--grandchild"},
                               kLongGrace);
  ASSERT_TRUE(wait_for_files({"rank0.pid", "rank1.pid", "rank2.pid", "grandchild0.pid", "grandchild1.pid", "grandchild2.pid"}));
  const auto pids = all_recorded_pids();
  ASSERT_EQ(pids.size(), 6u);
  const auto r = wait(launcher);
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_LT(r.seconds, 10);
  EXPECT_TRUE(std::regex_search(r.out, std::regex(R"(\[ERROR\].*rank 1 \(pid \d+\).*exits with return code = 3)"))) << r.out;
  EXPECT_NE(r.out.find("Killing subprocess"), std::string::npos);
  expect_all_gone(pids);
}

TEST_F(LauncherTest, ProcessesThatLeftTheirGroupAreStoppedToo) {
  const pid_t launcher = start(std::vector<std::string>{"--num_gpus", "2"} + fake_rank() +
                                   std::vector<std::string>{"--act", "sleep", "--act-rank", "0:exit:6:500", "--escapee"},
                               kLongGrace);
  ASSERT_TRUE(wait_for_files({"rank0.pid", "rank1.pid", "escapee0.pid", "escapee1.pid"}));
  const auto pids = all_recorded_pids();
  const auto r = wait(launcher);
  EXPECT_EQ(r.exit_code, 6) << r.out << r.err;
  EXPECT_LT(r.seconds, 10);
  expect_all_gone(pids);
}

TEST_F(LauncherTest, RankIgnoringSigtermIsKilledAfterTheGracePeriod) {
  const auto r = run(std::vector<std::string>{"--num_gpus", "2"} + fake_rank() +
                     std::vector<std::string>{"--act", "sleep_ignore_term", "--act-rank", "0:exit:5:300", "--grandchild"});
  EXPECT_EQ(r.exit_code, 5) << r.out << r.err;
  EXPECT_GE(r.seconds, 2.0);  // DS_KILL_GRACE_SECONDS=2
  EXPECT_LT(r.seconds, 10);
  EXPECT_NE(r.out.find("sending SIGKILL"), std::string::npos) << r.out;
  // SIGTERM went to rank 1's whole process group, not just to the rank that ignored it.
  EXPECT_TRUE(std::filesystem::exists(out_dir() + "/grandchild1.sigterm"));
  expect_all_gone(all_recorded_pids());
}

TEST_F(LauncherTest, SigtermToTheLauncherStopsTheJobWith143) {
  const pid_t launcher = start(std::vector<std::string>{"--num_gpus", "2"} + fake_rank() +
                                   std::vector<std::string>{"--act", "sleep", "--grandchild"},
                               kLongGrace);
  ASSERT_TRUE(wait_for_files({"rank0.pid", "rank1.pid", "grandchild0.pid", "grandchild1.pid"}));
  const auto pids = all_recorded_pids();
  ::kill(launcher, SIGTERM);
  const auto r = wait(launcher);
  EXPECT_EQ(r.exit_code, 143) << r.out << r.err;
  EXPECT_LT(r.seconds, 10);
  EXPECT_NE(r.out.find("Main process received SIGTERM, exiting"), std::string::npos) << r.out;
  expect_all_gone(pids);
}

TEST_F(LauncherTest, RanksHearAboutALauncherKilledWithSigkill) {
  // SIGKILL cannot be handled; PR_SET_PDEATHSIG still delivers SIGTERM to the ranks.
  const pid_t launcher = start(std::vector<std::string>{"--num_gpus", "2"} + fake_rank() + std::vector<std::string>{"--act", "sleep"});
  ASSERT_TRUE(wait_for_files({"rank0.pid", "rank1.pid"}));
  ::kill(launcher, SIGKILL);
  EXPECT_EQ(wait(launcher).exit_code, 137);
  expect_all_gone(all_recorded_pids());
}

TEST_F(LauncherTest, SigintToTheLauncherStopsTheJobWith130) {
  const pid_t launcher = start(std::vector<std::string>{"--num_gpus", "2"} + fake_rank() + std::vector<std::string>{"--act", "sleep"});
  ASSERT_TRUE(wait_for_files({"rank0.pid", "rank1.pid"}));
  ::kill(launcher, SIGINT);
  const auto r = wait(launcher);
  EXPECT_EQ(r.exit_code, 130) << r.out << r.err;
  expect_all_gone(all_recorded_pids());
}

TEST_F(LauncherTest, LeftoverGrandchildrenOfSuccessfulRanksAreCleanedUp) {
  const auto r = run(std::vector<std::string>{"--num_gpus", "2"} + fake_rank() +
                         std::vector<std::string>{"--act", "exit:0", "--grandchild", "--escapee"},
                     kLongGrace);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_LT(r.seconds, 10);
  ASSERT_NE(read_pid("grandchild0.pid"), -1);
  ASSERT_NE(read_pid("escapee1.pid"), -1);
  expect_all_gone(all_recorded_pids());
}

TEST_F(LauncherTest, EachRankLogGetsItsOwnFile) {
  const std::string log_dir = dir() + "/logs/nested";
  const auto r = run(std::vector<std::string>{"--num_gpus", "2", "--enable_each_rank_log", log_dir} + fake_rank() +
                     std::vector<std::string>{"--print", "hello"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  std::map<int, std::string> logs;
  for (const auto& entry : std::filesystem::directory_iterator(log_dir)) {
    std::smatch m;
    const std::string name = entry.path().filename().string();
    ASSERT_TRUE(std::regex_match(name, m, std::regex(R"(\d{14}_rank(\d+)\.log)"))) << name;
    logs[std::stoi(m[1])] = read_text(entry.path().string());
  }
  ASSERT_EQ(logs.size(), 2u);
  for (int rank = 0; rank < 2; ++rank) {
    EXPECT_NE(logs[rank].find("hello from rank " + std::to_string(rank)), std::string::npos) << logs[rank];
    EXPECT_NE(logs[rank].find("hello on stderr from rank " + std::to_string(rank)), std::string::npos) << logs[rank];
  }
  EXPECT_EQ(r.out.find("hello from rank"), std::string::npos);  // not on the launcher's own stdout
}

TEST_F(LauncherTest, BindCoresToRankPinsEachRankToItsSlice) {
  const auto r = run(std::vector<std::string>{"--num_gpus", "2", "--bind_cores_to_rank", "--bind_core_list", "0"} + fake_rank());
  EXPECT_EQ(r.exit_code, 2);  // one core cannot be split between two ranks
  EXPECT_NE(r.err.find("--bind_cores_to_rank"), std::string::npos) << r.err;
  const auto ok = run(std::vector<std::string>{"--bind_cores_to_rank", "--bind_core_list", "0"} + fake_rank());
  ASSERT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  EXPECT_EQ(rank_affinity(0), "0");
  EXPECT_EQ(rank_env(0)["OMP_NUM_THREADS"], "1");
}

TEST_F(LauncherTest, SavePidFileExistsOnlyWhileRunning) {
  const pid_t launcher = start(std::vector<std::string>{"--save_pid"} + fake_rank() + std::vector<std::string>{"--act", "sleep"});
  const std::string pid_file = "/tmp/" + std::to_string(launcher) + ".deepspeed";
  ASSERT_TRUE(wait_for_files({"rank0.pid"}));
  EXPECT_EQ(read_text(pid_file), std::to_string(launcher));
  ::kill(launcher, SIGTERM);
  const auto r = wait(launcher);
  EXPECT_EQ(r.exit_code, 143) << r.out << r.err;
  EXPECT_FALSE(std::filesystem::exists(pid_file));
}

TEST_F(LauncherTest, BadFlagsAndValuesExitTwoWithOneLine) {
  const std::string bad_hostfile = write_file("bad_hostfile", "hostA slots=2\nthis is wrong\n");
  const std::string rank = DS_FAKE_RANK_BIN;
  struct Case {
    std::vector<std::string> args;
    std::string expected;
    EnvChanges env;
  };
  const std::vector<Case> cases = {
      {{"--bogus_flag", rank}, "unrecognized option '--bogus_flag'", {}},
      {{"--num_gpus", "x", rank}, "--num_gpus: expected an integer", {}},
      {{"--include", "localhost:0", "--exclude", "localhost:1", rank}, "mutually exclusive", {}},
      {{"--num_gpus", "2", "--include", "localhost:0", rank}, "--num_gpus cannot be combined with --include", {}},
      {{}, "missing the user program", {}},
      {{"--module", rank}, "--module", {}},
      {{"-H", bad_hostfile, rank}, "hostfile " + bad_hostfile + " line 2", {}},
      {{"--include", "localhost:7", rank}, "has no slot 7", {{"DS_ACCELERATOR", std::nullopt}, {"DS_LAUNCHER_FAKE_GPU_COUNT", "2"}}},
      {{"--launcher", "mpich", rank}, "--launcher mpich", {}},
      {{"./no/such/program"}, "program './no/such/program'", {}},
      {{"no-such-program-on-path"}, "not found on PATH", {}},
      {{rank}, "DS_KILL_GRACE_SECONDS=soon", {{"DS_KILL_GRACE_SECONDS", "soon"}}},
      {{rank}, "DS_ACCELERATOR=tpu", {{"DS_ACCELERATOR", "tpu"}}},
      {{"--num_nodes", "2", rank}, "--num_nodes 2", {}},
      {{"--bind_cores_to_rank", "--bind_core_list", "3-1", rank}, "--bind_core_list", {}},
  };
  for (const auto& c : cases) {
    const auto r = run(c.args, c.env);
    SCOPED_TRACE(c.expected);
    EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
    const auto err_lines = lines(r.err);
    ASSERT_EQ(err_lines.size(), 1u) << r.err;
    EXPECT_EQ(err_lines[0].rfind("deepspeed: error: ", 0), 0u) << err_lines[0];
    EXPECT_NE(err_lines[0].find(c.expected), std::string::npos) << err_lines[0];
  }
}

}  // namespace
}  // namespace deepspeed::launcher::testing
