#include "process.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "deepspeed/util/error.h"
#include "deepspeed/util/strings.h"

extern char** environ;

namespace deepspeed::launcher {
namespace {

using util::cat;

std::vector<char*> c_strings(const std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  pointers.reserve(strings.size() + 1);
  for (const auto& s : strings) pointers.push_back(const_cast<char*>(s.c_str()));
  pointers.push_back(nullptr);
  return pointers;
}

void write_all(int fd, const std::string& text) {
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n <= 0 && errno != EINTR) return;
    if (n > 0) done += static_cast<std::size_t>(n);
  }
}

}  // namespace

int exit_code_from_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

pid_t spawn_child(const ChildSpec& spec, const sigset_t& child_mask, int stdin_fd) {
  // Everything the child needs is prepared before fork(): between fork and exec it only makes system calls.
  auto argv = c_strings(spec.argv);
  auto envp = c_strings(spec.env);
  int log_fd = -1;
  if (!spec.log_path.empty()) {
    log_fd = ::open(spec.log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (log_fd < 0) {
      throw UsageError(cat("--enable_each_rank_log: cannot create ", spec.log_path, ": ", std::strerror(errno)));
    }
  }
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  for (int core : spec.cpu_affinity) CPU_SET(core, &cpus);
  const std::string exec_error = cat("deepspeed: error: cannot execute '", spec.argv.at(0), "' (", spec.label, "): ");
  const pid_t parent = ::getpid();

  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    if (log_fd >= 0) ::close(log_fd);
    throw JobError(cat("fork failed for ", spec.label, ": ", std::strerror(errno)));
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    // Dispositions before the mask: a signal let through must not run a launcher handler in the child.
    for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP}) ::signal(sig, SIG_DFL);
    ::sigprocmask(SIG_SETMASK, &child_mask, nullptr);
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(1);  // the launcher died before prctl took effect
    ::dup2(stdin_fd, STDIN_FILENO);
    if (log_fd >= 0) {
      ::dup2(log_fd, STDOUT_FILENO);
      ::dup2(log_fd, STDERR_FILENO);
    }
    if (!spec.cpu_affinity.empty()) ::sched_setaffinity(0, sizeof cpus, &cpus);
    ::execvpe(argv[0], argv.data(), envp.data());
    write_all(STDERR_FILENO, exec_error + std::strerror(errno) + "\n");
    ::_exit(127);
  }
  // Also set from the parent so the group exists before anyone signals it, whichever process runs first.
  ::setpgid(pid, pid);
  if (log_fd >= 0) ::close(log_fd);
  return pid;
}

std::vector<int> run_quietly(const std::vector<std::vector<std::string>>& commands, double timeout_seconds) {
  std::vector<pid_t> pids;
  std::vector<int> codes(commands.size(), -1);
  const int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  for (const auto& command : commands) {
    auto argv = c_strings(command);
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::setpgid(0, 0);
      for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::signal(sig, SIG_DFL);
      ::dup2(null_fd, STDIN_FILENO);
      ::dup2(null_fd, STDOUT_FILENO);
      ::dup2(null_fd, STDERR_FILENO);
      ::execvp(argv[0], argv.data());
      ::_exit(127);
    }
    if (pid > 0) ::setpgid(pid, pid);
    pids.push_back(pid);
  }
  if (null_fd >= 0) ::close(null_fd);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_seconds);
  std::size_t running = 0;
  for (pid_t pid : pids) running += pid > 0 ? 1 : 0;
  while (running > 0 && std::chrono::steady_clock::now() < deadline) {
    for (std::size_t i = 0; i < pids.size(); ++i) {
      int status = 0;
      if (pids[i] > 0 && ::waitpid(pids[i], &status, WNOHANG) == pids[i]) {
        codes[i] = exit_code_from_status(status);
        pids[i] = -1;
        --running;
      }
    }
    if (running > 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  for (pid_t pid : pids) {
    if (pid <= 0) continue;
    ::kill(-pid, SIGKILL);
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  return codes;
}

std::vector<std::string> current_environment() {
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) env.emplace_back(*e);
  return env;
}

std::optional<std::string> find_program(const std::string& program, const char* path_env) {
  const auto runnable = [](const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
  };
  if (program.empty()) return std::nullopt;
  if (program.find('/') != std::string::npos) {
    if (runnable(program)) return program;
    return std::nullopt;
  }
  for (const auto& dir : util::split(path_env != nullptr ? path_env : "/usr/local/bin:/usr/bin:/bin", ':')) {
    const std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + program;
    if (runnable(candidate)) return candidate;
  }
  return std::nullopt;
}

}  // namespace deepspeed::launcher
