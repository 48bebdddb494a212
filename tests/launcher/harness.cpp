#include "harness.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace deepspeed::launcher::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::map<pid_t, Clock::time_point>& start_times() {
  static std::map<pid_t, Clock::time_point> times;
  return times;
}

}  // namespace

void LauncherTest::SetUp() {
  char dir_template[] = "/tmp/ds_launcher_test_XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  dir_ = dir_template;
  out_dir_ = dir_ + "/out";
  fs::create_directories(out_dir_);
  // Nothing connects to the port, but distinct values keep concurrent runs' logs apart.
  port_ = 20000 + static_cast<int>(::getpid() % 20000);
}

void LauncherTest::TearDown() {
  // A failed test must not leave its processes behind for the next one.
  for (pid_t pid : all_recorded_pids()) {
    if (alive(pid)) ::kill(pid, SIGKILL);
  }
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

pid_t LauncherTest::start(const std::vector<std::string>& args, const EnvChanges& env) {
  std::vector<std::string> argv{DS_LAUNCHER_BIN};
  const bool has_hostfile = std::any_of(args.begin(), args.end(), [](const std::string& a) {
    return a == "-H" || a == "--hostfile" || a.rfind("--hostfile=", 0) == 0;
  });
  if (!has_hostfile) argv.insert(argv.end(), {"-H", dir_ + "/no_hostfile"});
  argv.insert(argv.end(), {"--master_port", std::to_string(port_)});
  argv.insert(argv.end(), args.begin(), args.end());
  EnvChanges changes{{"DS_ACCELERATOR", "cpu"},        {"DS_KILL_GRACE_SECONDS", "2"},
                     {"CUDA_VISIBLE_DEVICES", std::nullopt}, {"DS_LAUNCHER_FAKE_GPU_COUNT", std::nullopt},
                     {"DS_ENV_FILE", std::nullopt},    {"NCCL_NVLS_ENABLE", std::nullopt}};
  for (const auto& [key, value] : env) changes[key] = value;

  static int counter = 0;
  const std::string out_path = dir_ + "/launcher" + std::to_string(counter) + ".out";
  const std::string err_path = dir_ + "/launcher" + std::to_string(counter++) + ".err";
  std::vector<char*> c_argv;
  for (auto& a : argv) c_argv.push_back(a.data());
  c_argv.push_back(nullptr);
  const auto started = Clock::now();
  const pid_t pid = ::fork();
  if (pid == 0) {
    for (const auto& [key, value] : changes) {
      if (value) ::setenv(key.c_str(), value->c_str(), 1); else ::unsetenv(key.c_str());
    }
    if (!std::freopen(out_path.c_str(), "w", stdout) || !std::freopen(err_path.c_str(), "w", stderr)) ::_exit(120);
    ::execv(c_argv[0], c_argv.data());
    ::_exit(121);
  }
  EXPECT_GT(pid, 0);
  outputs_[pid] = {out_path, err_path};
  start_times()[pid] = started;
  return pid;
}

RunResult LauncherTest::wait(pid_t launcher, double timeout) {
  RunResult result;
  const auto started = start_times()[launcher];
  int status = 0;
  while (true) {
    const pid_t done = ::waitpid(launcher, &status, WNOHANG);
    if (done == launcher) {
      result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      break;
    }
    if (seconds_since(started) > timeout) {
      ::kill(launcher, SIGKILL);
      ::waitpid(launcher, &status, 0);
      ADD_FAILURE() << "launcher still running after " << timeout << "s; killed it";
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  result.seconds = seconds_since(started);
  result.out = read_text(outputs_[launcher].first);
  result.err = read_text(outputs_[launcher].second);
  return result;
}

RunResult LauncherTest::run(const std::vector<std::string>& args, const EnvChanges& env, double timeout) {
  return wait(start(args, env), timeout);
}

std::vector<std::string> LauncherTest::fake_rank() const { return {DS_FAKE_RANK_BIN, "--out", out_dir_}; }

bool LauncherTest::wait_for_files(const std::vector<std::string>& names, double timeout) const {
  const auto started = Clock::now();
  while (seconds_since(started) < timeout) {
    if (std::all_of(names.begin(), names.end(), [&](const std::string& n) { return fs::exists(out_dir_ + "/" + n); })) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

pid_t LauncherTest::read_pid(const std::string& name) const {
  const std::string text = read_text(out_dir_ + "/" + name);
  return text.empty() ? -1 : static_cast<pid_t>(std::stol(text));
}

std::vector<pid_t> LauncherTest::all_recorded_pids() const {
  std::vector<pid_t> pids;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(out_dir_, ec)) {
    if (entry.path().extension() == ".pid") pids.push_back(read_pid(entry.path().filename().string()));
  }
  return pids;
}

std::map<std::string, std::string> LauncherTest::rank_env(int rank) const {
  std::map<std::string, std::string> env;
  for (const auto& line : lines(read_text(out_dir_ + "/rank" + std::to_string(rank) + ".txt"))) {
    if (line.rfind("env:", 0) != 0) continue;
    const auto eq = line.find('=');
    env[line.substr(4, eq - 4)] = line.substr(eq + 1);
  }
  return env;
}

std::vector<std::string> LauncherTest::rank_argv(int rank) const {
  std::vector<std::string> argv;
  for (const auto& line : lines(read_text(out_dir_ + "/rank" + std::to_string(rank) + ".txt"))) {
    if (line.rfind("argv[", 0) == 0) argv.push_back(line.substr(line.find('=') + 1));
  }
  return argv;
}

std::string LauncherTest::rank_affinity(int rank) const {
  for (const auto& line : lines(read_text(out_dir_ + "/rank" + std::to_string(rank) + ".txt"))) {
    if (line.rfind("affinity=", 0) == 0) return line.substr(9);
  }
  return "<missing>";
}

std::string LauncherTest::write_file(const std::string& name, const std::string& text) const {
  const std::string path = dir_ + "/" + name;
  std::ofstream(path) << text;
  return path;
}

bool LauncherTest::alive(pid_t pid) {
  if (pid <= 0 || ::kill(pid, 0) != 0) return false;
  const std::string stat = read_text("/proc/" + std::to_string(pid) + "/stat");
  const auto close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z';
}

void LauncherTest::expect_all_gone(const std::vector<pid_t>& pids, double timeout) {
  const auto started = Clock::now();
  for (pid_t pid : pids) {
    while (alive(pid) && seconds_since(started) < timeout) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_FALSE(alive(pid)) << "process " << pid << " outlived the launcher";
  }
}

std::string LauncherTest::read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string> LauncherTest::lines(const std::string& text) {
  std::vector<std::string> result;
  std::stringstream stream(text);
  std::string line;
  while (std::getline(stream, line)) result.push_back(line);
  return result;
}

}  // namespace deepspeed::launcher::testing
