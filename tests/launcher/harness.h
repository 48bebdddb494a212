#pragma once
// Integration-test harness: runs the real build/bin/deepspeed with fake_rank as the user program, in a fresh
// temporary directory per test, and reads back what each rank recorded.

#include <gtest/gtest.h>
#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace deepspeed::launcher::testing {

/// How one launcher run ended.
struct RunResult {
  int exit_code = -1;   ///< exit status, or 128+signal; -1 when the harness had to kill a hung launcher
  double seconds = 0;   ///< wall time from start to exit
  std::string out;      ///< launcher stdout (and that of ranks without a log file)
  std::string err;      ///< launcher stderr
};

/// Environment changes for the launcher: a value sets, nullopt unsets.
using EnvChanges = std::map<std::string, std::optional<std::string>>;

class LauncherTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  /// Starts `deepspeed -H <dir>/no_hostfile --master_port <port> ARGS` (without the -H when `args` has its own)
  /// with DS_ACCELERATOR=cpu, DS_KILL_GRACE_SECONDS=2 and no CUDA_VISIBLE_DEVICES, then `env` applied.
  pid_t start(const std::vector<std::string>& args, const EnvChanges& env = {});
  /// Waits for the launcher started by start(); after `timeout` seconds it is SIGKILLed and the test fails.
  RunResult wait(pid_t launcher, double timeout = 25);
  RunResult run(const std::vector<std::string>& args, const EnvChanges& env = {}, double timeout = 25);

  /// fake_rank's argv prefix: {FAKE_RANK, "--out", out_dir()}.
  std::vector<std::string> fake_rank() const;
  /// Waits until every `names` file exists in out_dir(); false after `timeout` seconds.
  bool wait_for_files(const std::vector<std::string>& names, double timeout = 10) const;
  /// Pid stored in out_dir()/name ("rank0.pid", "grandchild1.pid"); -1 if missing.
  pid_t read_pid(const std::string& name) const;
  /// Every pid file in out_dir() (ranks and grandchildren).
  std::vector<pid_t> all_recorded_pids() const;
  /// What rank `rank` recorded: its environment and argv.
  std::map<std::string, std::string> rank_env(int rank) const;
  std::vector<std::string> rank_argv(int rank) const;
  /// The cores rank `rank` may run on, e.g. "0,1".
  std::string rank_affinity(int rank) const;
  /// Writes a file under dir() and returns its path.
  std::string write_file(const std::string& name, const std::string& text) const;

  /// True while `pid` exists and is not a zombie.
  static bool alive(pid_t pid);
  /// Expects every pid to be gone, waiting up to `timeout` for the kernel to finish reaping.
  static void expect_all_gone(const std::vector<pid_t>& pids, double timeout = 3);
  static std::string read_text(const std::string& path);
  static std::vector<std::string> lines(const std::string& text);

  const std::string& dir() const { return dir_; }
  const std::string& out_dir() const { return out_dir_; }
  int port() const { return port_; }

 private:
  std::string dir_;
  std::string out_dir_;
  int port_ = 0;
  std::map<pid_t, std::pair<std::string, std::string>> outputs_;
};

}  // namespace deepspeed::launcher::testing
