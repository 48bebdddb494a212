#pragma once
/// \file
/// Runs a set of children to completion as one job: if any child fails, or the launcher is told to stop,
/// every child's whole process group is terminated (SIGTERM, a grace period, SIGKILL) and nothing is left
/// behind.

#include <string>
#include <vector>

#include "process.h"

namespace deepspeed::launcher {

struct SupervisorOptions {
  /// Seconds between "terminate" and SIGKILL (DS_KILL_GRACE_SECONDS, default 30).
  double grace_seconds = 30;
  /// Per-node agent started over ssh: EOF on our stdin (the connection to the launcher closed) stops the job.
  bool stdin_watchdog = false;
  /// Run once, unsupervised, when the job is stopped early (pdsh: pkill the remote agents). May be empty.
  std::vector<std::string> abort_command;
};

/// Starts every child (each in its own process group) and waits, checking about every 100 ms:
/// - all children exit 0: returns 0;
/// - the first child to exit non-zero (or die of signal S, counted as 128+S) is logged as
///   "[ERROR] ... exits with return code = N"; every other child is terminated; returns N;
/// - SIGINT/SIGTERM/SIGHUP to the launcher (or stdin EOF with stdin_watchdog): every child is terminated;
///   returns 128+signal. A second signal during the grace period SIGKILLs at once.
/// "Terminated" means SIGTERM to the child's process group (or closing its stdin, see ChildSpec), then
/// SIGKILL to the group after the grace period. The launcher is the children's subreaper, so processes that
/// leave their group are still found and stopped; groups still populated after a child exits 0 are
/// terminated the same way before returning.
int run_supervised(const std::vector<ChildSpec>& children, const SupervisorOptions& options);

/// Parses DS_KILL_GRACE_SECONDS (`value` may be null: 30). Throws UsageError unless it is a number >= 0.
double grace_seconds_from_env(const char* value);

}  // namespace deepspeed::launcher
