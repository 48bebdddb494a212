#include "supervisor.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <set>

#include "deepspeed/util/error.h"
#include "deepspeed/util/logging.h"
#include "deepspeed/util/strings.h"
#include "shell.h"

namespace deepspeed::launcher {
namespace {

using Clock = std::chrono::steady_clock;
using util::cat;

constexpr int kPollMillis = 100;
/// How long to wait for processes to disappear after SIGKILL before giving up on them (D-state).
constexpr double kKillWaitSeconds = 5;

struct Tracked {
  const ChildSpec* spec = nullptr;
  pid_t pid = -1;  ///< also the process group id
  bool exited = false;
};

enum class Phase { kRunning, kTerminating, kKilling };

bool group_alive(pid_t pgid) { return pgid > 0 && (::kill(-pgid, 0) == 0 || errno != ESRCH); }

/// Processes whose parent is `self` apart from `known` ones: descendants that left their process group and
/// were re-parented to us as their subreaper.
std::vector<pid_t> adopted_orphans(pid_t self, const std::vector<pid_t>& known) {
  std::vector<pid_t> orphans;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return orphans;
  while (const dirent* entry = ::readdir(proc)) {
    char* end = nullptr;
    const long pid = std::strtol(entry->d_name, &end, 10);
    if (pid <= 0 || *end != '\0') continue;
    std::ifstream stat_file(cat("/proc/", pid, "/stat"));
    std::string stat;
    std::getline(stat_file, stat);
    // The command name may contain spaces and parentheses; fields resume after the last ')'.
    const auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    char state = 0;
    long ppid = 0;
    if (std::sscanf(stat.c_str() + close + 1, " %c %ld", &state, &ppid) != 2 || ppid != self) continue;
    bool is_known = false;
    for (pid_t k : known) is_known = is_known || k == pid;
    if (!is_known) orphans.push_back(static_cast<pid_t>(pid));
  }
  ::closedir(proc);
  return orphans;
}

class Supervisor {
 public:
  Supervisor(const std::vector<ChildSpec>& specs, const SupervisorOptions& options);
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  int run();

 private:
  void start_all();
  /// Waits until nothing is left (or SIGKILL failed for kKillWaitSeconds), driving the phases.
  void drain();
  void reap();
  void on_exit(Tracked& child, int status);
  bool all_exited() const;
  bool anything_alive();
  void terminate(const std::string& why);
  void kill_everything();
  void wait_for_events();
  void on_stop_request(const std::string& what, int code);
  void terminate_new_orphans();
  std::vector<pid_t> known_pids() const;

  const SupervisorOptions& options_;
  std::vector<Tracked> children_;
  pid_t helper_pid_ = -1;
  sigset_t old_mask_{};
  int signal_fd_ = -1;
  int null_fd_ = -1;
  int eof_pipe_[2] = {-1, -1};
  bool watch_stdin_ = false;
  Phase phase_ = Phase::kRunning;
  Clock::time_point deadline_{};
  std::optional<int> failure_code_;
  std::optional<int> stop_code_;
  std::set<pid_t> terminated_orphans_;
};

Supervisor::Supervisor(const std::vector<ChildSpec>& specs, const SupervisorOptions& options)
    : options_(options), watch_stdin_(options.stdin_watchdog) {
  for (const auto& spec : specs) children_.push_back({&spec, -1, false});
  // Signals become events read from a signalfd, so no handler ever runs between two system calls of ours.
  sigset_t watched;
  sigemptyset(&watched);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGCHLD}) sigaddset(&watched, sig);
  ::sigprocmask(SIG_BLOCK, &watched, &old_mask_);
  signal_fd_ = ::signalfd(-1, &watched, SFD_CLOEXEC | SFD_NONBLOCK);
  // A closed stdout must not kill the launcher (and orphan the job) on its next log line.
  ::signal(SIGPIPE, SIG_IGN);
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  null_fd_ = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  for (const auto& spec : specs) {
    if (spec.terminate_by_stdin_eof && eof_pipe_[0] < 0 && ::pipe2(eof_pipe_, O_CLOEXEC) != 0) {
      throw JobError(cat("pipe failed: ", std::strerror(errno)));
    }
  }
}

Supervisor::~Supervisor() {
  for (int fd : {signal_fd_, null_fd_, eof_pipe_[0], eof_pipe_[1]}) {
    if (fd >= 0) ::close(fd);
  }
}

std::vector<pid_t> Supervisor::known_pids() const {
  std::vector<pid_t> pids;
  for (const auto& c : children_) {
    if (!c.exited) pids.push_back(c.pid);
  }
  if (helper_pid_ > 0) pids.push_back(helper_pid_);
  return pids;
}

void Supervisor::start_all() {
  for (auto& child : children_) {
    const int stdin_fd = child.spec->terminate_by_stdin_eof ? eof_pipe_[0] : null_fd_;
    try {
      child.pid = spawn_child(*child.spec, old_mask_, stdin_fd);
    } catch (...) {
      for (auto& c : children_) c.exited = c.exited || c.pid < 0;  // never started: nothing to wait for
      terminate("a child could not be started");
      drain();
      throw;
    }
    DS_LOG(kInfo, "process ", child.pid, " (", child.spec->label, ") spawned with command: ", shell_join(child.spec->argv));
  }
}

void Supervisor::reap() {
  int status = 0;
  pid_t pid;
  while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
    if (pid == helper_pid_) helper_pid_ = -1;
    for (auto& child : children_) {
      if (child.pid == pid && !child.exited) on_exit(child, status);
    }
  }
}

void Supervisor::on_exit(Tracked& child, int status) {
  child.exited = true;
  const int code = exit_code_from_status(status);
  const std::string signal_note =
      WIFSIGNALED(status) ? cat(" (killed by signal ", WTERMSIG(status), ", ", ::strsignal(WTERMSIG(status)), ")") : "";
  if (code == 0) {
    DS_LOG(kInfo, "Process ", child.pid, " (", child.spec->label, ") exits successfully.");
  } else if (phase_ == Phase::kRunning) {
    failure_code_ = code;
    DS_LOG(kError, child.spec->label, " (pid ", child.pid, ") ", shell_join(child.spec->argv),
           " exits with return code = ", code, signal_note);
    terminate(cat(child.spec->label, " failed"));
  } else {
    DS_LOG(kInfo, "Process ", child.pid, " (", child.spec->label, ") exited with code ", code, signal_note,
           " during shutdown");
  }
}

bool Supervisor::all_exited() const {
  for (const auto& c : children_) {
    if (!c.exited) return false;
  }
  return true;
}

bool Supervisor::anything_alive() {
  if (!all_exited()) return true;
  for (const auto& c : children_) {
    if (group_alive(c.pid)) return true;
  }
  return !adopted_orphans(::getpid(), known_pids()).empty();
}

void Supervisor::terminate(const std::string& why) {
  phase_ = Phase::kTerminating;
  deadline_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options_.grace_seconds));
  DS_LOG(kInfo, "Stopping all processes (", why, "); SIGKILL follows in ", options_.grace_seconds, "s");
  if (eof_pipe_[1] >= 0) {
    ::close(eof_pipe_[1]);
    eof_pipe_[1] = -1;
  }
  for (const auto& c : children_) {
    if (c.pid <= 0) continue;
    if (!c.exited && c.spec->terminate_by_stdin_eof) {
      DS_LOG(kInfo, "Closing stdin of subprocess ", c.pid, " (", c.spec->label, ")");
    } else if (group_alive(c.pid)) {
      DS_LOG(kInfo, "Killing subprocess ", c.pid, " (", c.spec->label, ")");
      ::kill(-c.pid, SIGTERM);
    }
  }
  terminate_new_orphans();
  if (!options_.abort_command.empty() && helper_pid_ < 0) {
    ChildSpec helper;
    helper.label = "abort command";
    helper.argv = options_.abort_command;
    helper.env = current_environment();
    try {
      helper_pid_ = spawn_child(helper, old_mask_, null_fd_);
      DS_LOG(kInfo, "running ", shell_join(helper.argv));
    } catch (const std::exception& e) {
      DS_LOG(kWarning, "could not run the abort command: ", e.what());
    }
  }
}

void Supervisor::terminate_new_orphans() {
  // Orphans keep appearing while ranks die (their setsid()'d descendants are re-parented to us then), so
  // this runs on every poll of the terminating phase, once per process.
  for (pid_t orphan : adopted_orphans(::getpid(), known_pids())) {
    if (terminated_orphans_.insert(orphan).second) ::kill(orphan, SIGTERM);
  }
}

void Supervisor::kill_everything() {
  for (const auto& c : children_) {
    if (group_alive(c.pid)) {
      DS_LOG(kWarning, "Process group ", c.pid, " (", c.spec->label, ") still alive after ", options_.grace_seconds,
             "s; sending SIGKILL");
      ::kill(-c.pid, SIGKILL);
    }
  }
  for (pid_t orphan : adopted_orphans(::getpid(), known_pids())) ::kill(orphan, SIGKILL);
  if (helper_pid_ > 0) ::kill(-helper_pid_, SIGKILL);
  phase_ = Phase::kKilling;
  deadline_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(kKillWaitSeconds));
}

void Supervisor::on_stop_request(const std::string& what, int code) {
  if (phase_ == Phase::kRunning) {
    stop_code_ = code;
    DS_LOG(kInfo, "Main process received ", what, ", exiting");
    terminate(what);
  } else if (phase_ == Phase::kTerminating) {
    DS_LOG(kWarning, "Main process received ", what, " again; killing all processes now");
    kill_everything();
  }
}

void Supervisor::wait_for_events() {
  pollfd fds[2] = {{signal_fd_, POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
  const int count = watch_stdin_ ? 2 : 1;
  if (::poll(fds, static_cast<nfds_t>(count), kPollMillis) <= 0) return;
  if (fds[0].revents & POLLIN) {
    signalfd_siginfo info{};
    while (::read(signal_fd_, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
      const int sig = static_cast<int>(info.ssi_signo);
      if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
        on_stop_request(sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "SIGHUP", 128 + sig);
      }
    }
  }
  if (count == 2 && fds[1].revents != 0) {
    char buffer[4096];
    const ssize_t n = (fds[1].revents & POLLNVAL) ? 0 : ::read(STDIN_FILENO, buffer, sizeof buffer);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
      watch_stdin_ = false;
      on_stop_request("EOF on stdin (the launcher's connection closed)", 128 + SIGHUP);
    }
  }
}

void Supervisor::drain() {
  while (true) {
    reap();
    if (!anything_alive()) return;
    if (phase_ == Phase::kRunning && all_exited()) {
      terminate("every rank exited but processes they started are still running");
    }
    if (phase_ == Phase::kTerminating) terminate_new_orphans();
    if (phase_ == Phase::kTerminating && Clock::now() >= deadline_) {
      kill_everything();
    } else if (phase_ == Phase::kKilling && Clock::now() >= deadline_) {
      DS_LOG(kError, "processes survived SIGKILL for ", kKillWaitSeconds, "s (uninterruptible sleep?); giving up");
      return;
    }
    wait_for_events();
  }
}

int Supervisor::run() {
  start_all();
  drain();
  if (failure_code_) return *failure_code_;
  if (stop_code_) return *stop_code_;
  return 0;
}

}  // namespace

double grace_seconds_from_env(const char* value) {
  if (value == nullptr || *value == '\0') return 30;
  char* end = nullptr;
  const double seconds = std::strtod(value, &end);
  if (end == value || *end != '\0' || !std::isfinite(seconds) || seconds < 0) {
    throw UsageError(cat("DS_KILL_GRACE_SECONDS=", value, ": expected a number of seconds >= 0"));
  }
  return seconds;
}

int run_supervised(const std::vector<ChildSpec>& children, const SupervisorOptions& options) {
  Supervisor supervisor(children, options);
  return supervisor.run();
}

}  // namespace deepspeed::launcher
