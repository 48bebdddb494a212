#pragma once
/// \file
/// Starting processes: fork/exec of one child in its own process group, quiet helper commands (the ssh
/// reachability check), and PATH lookup. Supervision lives in supervisor.h.

#include <signal.h>
#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace deepspeed::launcher {

/// One process the supervisor starts and watches.
struct ChildSpec {
  std::string label;               ///< names the child in log lines: "rank 3", "node 1 (worker-1)"
  std::vector<std::string> argv;   ///< argv[0] is looked up on PATH when it has no '/', like execvp
  std::vector<std::string> env;    ///< the complete environment, KEY=VALUE
  std::string log_path;            ///< non-empty: stdout and stderr go to this file (created or truncated)
  std::vector<int> cpu_affinity;   ///< non-empty: the child is pinned to these cores before exec
  /// true: stdin is a pipe the supervisor holds, and "terminate" means closing it (an ssh child then passes
  /// EOF to its remote agent, which stops its ranks and still reports their output); false: stdin is
  /// /dev/null and "terminate" means SIGTERM to the child's process group.
  bool terminate_by_stdin_eof = false;
};

/// Forks and execs `spec` in a new process group (pgid = pid) with signal mask `child_mask` and default
/// SIGPIPE, stdin from `stdin_fd` (dup'ed), and PR_SET_PDEATHSIG=SIGTERM so the child hears about a launcher
/// that died without cleaning up. If exec fails the child prints one "deepspeed: error:" line and exits 127.
/// Throws JobError when fork fails and UsageError when the log file cannot be created.
pid_t spawn_child(const ChildSpec& spec, const sigset_t& child_mask, int stdin_fd);

/// Runs `commands` concurrently with stdin, stdout and stderr on /dev/null and returns each exit code
/// (128+S when killed by signal S; -1 when still running after `timeout_seconds`, in which case it is killed).
std::vector<int> run_quietly(const std::vector<std::vector<std::string>>& commands, double timeout_seconds);

/// This process's environment as KEY=VALUE strings.
std::vector<std::string> current_environment();

/// What execvp would run for `program`: the program itself when it contains '/', else the first executable
/// regular file named `program` in the directories of `path_env` (empty entries mean "."). nullopt when none.
std::optional<std::string> find_program(const std::string& program, const char* path_env);

/// The exit code a shell would report for a wait() status: the code, or 128+S for a signal S.
int exit_code_from_status(int status);

}  // namespace deepspeed::launcher
