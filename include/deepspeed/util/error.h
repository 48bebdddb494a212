#pragma once
/// \file
/// Error types and the process-level policy for them.
///
/// Every failure a user can fix (a bad config key, a bad flag, a missing file) is a UsageError: its message
/// is one line that names the key, flag or file and what was expected, and the process exits with code 2.
/// Failures of the distributed job (a collective that timed out, a peer that died) are JobErrors and exit
/// with code 1. Neither prints a stack trace.

#include <exception>
#include <stdexcept>
#include <string>

namespace deepspeed {

/// Something the user can fix: bad input, bad configuration, a missing file. Exit code 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A ds_config.json problem. The message starts with the config's name and the dotted key path.
class ConfigError : public UsageError {
 public:
  using UsageError::UsageError;
};

/// The distributed job failed at run time (collective timeout, lost peer, non-finite loss scale floor).
/// Exit code 1.
class JobError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Exit code the process should use for this exception: 2 for UsageError, 1 otherwise.
int exit_code_for(const std::exception& e) noexcept;

/// One line describing `e` for the user, without stack traces (c10::Error's backtrace is dropped).
std::string describe(const std::exception& e);

/// Installs a std::terminate handler so that an exception escaping main() prints
/// "deepspeed: error: <one line>" (prefixed with the rank when known) to stderr and exits with
/// exit_code_for(e) instead of aborting with a core dump. Idempotent; called by add_config_arguments() and
/// initialize(). Programs that catch exceptions themselves are unaffected.
void install_error_handler();

/// Sets the rank printed in error lines (set by init_distributed()). -1 means "not distributed".
void set_error_rank(int rank) noexcept;

}  // namespace deepspeed
