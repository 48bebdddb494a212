#pragma once
/// \file
/// Logging in DeepSpeed's format:
///   [2026-11-27 18:41:00,123] [INFO] [engine.cpp:212:step] [Rank 0] step=10, skipped=0, ...
/// DS_LOG prints on every rank; DS_LOG_DIST only on rank 0 (with the "[Rank 0] " prefix DeepSpeed's
/// log_dist adds). Output goes to stdout, one line per call, flushed, so per-rank logs interleave by line.

#include <string>
#include <string_view>

#include "deepspeed/util/strings.h"

namespace deepspeed::log {

enum class Level { kDebug = 10, kInfo = 20, kWarning = 30, kError = 40 };

/// Sets this process's rank for DS_LOG_DIST filtering and prefixes (called by init_distributed()).
void set_rank(int rank) noexcept;
int rank() noexcept;

/// Lines below this level are dropped. Default kInfo; env DEEPSPEED_LOG_LEVEL=debug|info|warning|error.
void set_level(Level level) noexcept;
bool enabled(Level level) noexcept;

/// Writes one formatted line. `file` may be a full path; only its base name is printed.
void write(Level level, std::string_view file, int line, std::string_view func, std::string_view message);

/// print_dist: the message with DeepSpeed's "[Rank N] " prefix and no logger header, rank 0 only.
void print_rank0(std::string_view message);
/// The message as it is (Python's print), rank 0 only: tables that tools parse, such as the comms summary.
void print_plain_rank0(std::string_view message);

}  // namespace deepspeed::log

#define DS_LOG(level, ...)                                                                      \
  do {                                                                                          \
    if (::deepspeed::log::enabled(::deepspeed::log::Level::level))                              \
      ::deepspeed::log::write(::deepspeed::log::Level::level, __FILE__, __LINE__, __func__,     \
                              ::deepspeed::util::cat(__VA_ARGS__));                             \
  } while (0)

#define DS_LOG_DIST(level, ...)                                                                 \
  do {                                                                                          \
    if (::deepspeed::log::rank() <= 0 && ::deepspeed::log::enabled(::deepspeed::log::Level::level)) \
      ::deepspeed::log::write(::deepspeed::log::Level::level, __FILE__, __LINE__, __func__,     \
                              ::deepspeed::util::cat("[Rank ", ::deepspeed::log::rank() < 0 ? 0 : ::deepspeed::log::rank(), "] ", __VA_ARGS__)); \
  } while (0)
