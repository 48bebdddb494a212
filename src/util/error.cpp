#include "deepspeed/util/error.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <unistd.h>

namespace deepspeed {
namespace {

std::atomic<int> g_error_rank{-1};

// LibTorch's c10::Error appends a C++ backtrace after the first line of what(); users should see the
// message, not the trace. The library itself never lets a c10::Error escape with user-facing meaning, so the
// first line is the useful part for anything else that slips through.
std::string first_line(const char* text) {
  std::string s(text ? text : "");
  const auto pos = s.find('\n');
  if (pos != std::string::npos) s.resize(pos);
  return s;
}

[[noreturn]] void terminate_handler() {
  std::string message = "terminated without an active exception";
  int code = 1;
  if (auto current = std::current_exception()) {
    try {
      std::rethrow_exception(current);
    } catch (const std::exception& e) {
      message = describe(e);
      code = exit_code_for(e);
    } catch (...) {
      message = "unknown exception";
    }
  }
  const int rank = g_error_rank.load();
  const std::string line = (rank >= 0 ? "[rank " + std::to_string(rank) + "] " : std::string()) +
                           "deepspeed: error: " + message + "\n";
  std::fflush(stdout);
  (void)!::write(STDERR_FILENO, line.data(), line.size());
  std::_Exit(code);
}

}  // namespace

int exit_code_for(const std::exception& e) noexcept {
  return dynamic_cast<const UsageError*>(&e) != nullptr ? 2 : 1;
}

std::string describe(const std::exception& e) { return first_line(e.what()); }

void install_error_handler() {
  static const bool installed = [] {
    std::set_terminate(terminate_handler);
    return true;
  }();
  (void)installed;
}

void set_error_rank(int rank) noexcept { g_error_rank = rank; }

}  // namespace deepspeed
