#include "deepspeed/util/logging.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <string>

namespace deepspeed::log {
namespace {

std::atomic<int> g_rank{-1};

Level level_from_env() {
  const char* env = std::getenv("DEEPSPEED_LOG_LEVEL");
  if (!env) return Level::kInfo;
  const std::string value(env);
  if (value == "debug" || value == "DEBUG") return Level::kDebug;
  if (value == "warning" || value == "WARNING") return Level::kWarning;
  if (value == "error" || value == "ERROR") return Level::kError;
  return Level::kInfo;
}

std::atomic<int> g_level{static_cast<int>(level_from_env())};

const char* level_name(Level level) {
  switch (level) {
    case Level::kDebug: return "DEBUG";
    case Level::kInfo: return "INFO";
    case Level::kWarning: return "WARNING";
    case Level::kError: return "ERROR";
  }
  return "INFO";
}

std::string timestamp() {
  // Python logging's asctime: "2026-11-27 18:41:00,123".
  const auto now = std::chrono::system_clock::now();
  const auto seconds = std::chrono::system_clock::to_time_t(now);
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm local{};
  localtime_r(&seconds, &local);
  char buffer[64];
  const auto n = std::strftime(buffer, sizeof buffer, "%Y-%m-%d %H:%M:%S", &local);
  std::snprintf(buffer + n, sizeof buffer - n, ",%03d", static_cast<int>(millis));
  return buffer;
}

std::mutex& output_mutex() {
  static std::mutex m;
  return m;
}

}  // namespace

void set_rank(int rank) noexcept { g_rank = rank; }
int rank() noexcept { return g_rank; }
void set_level(Level level) noexcept { g_level = static_cast<int>(level); }
bool enabled(Level level) noexcept { return static_cast<int>(level) >= g_level; }

void write(Level level, std::string_view file, int line, std::string_view func, std::string_view message) {
  const auto slash = file.find_last_of('/');
  if (slash != std::string_view::npos) file.remove_prefix(slash + 1);
  const std::string text = "[" + timestamp() + "] [" + level_name(level) + "] [" + std::string(file) + ":" +
                           std::to_string(line) + ":" + std::string(func) + "] " + std::string(message) + "\n";
  std::lock_guard<std::mutex> lock(output_mutex());
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

void print_plain_rank0(std::string_view message) {
  if (g_rank > 0) return;
  std::lock_guard<std::mutex> lock(output_mutex());
  std::fwrite(message.data(), 1, message.size(), stdout);
  std::fflush(stdout);
}

void print_rank0(std::string_view message) {
  if (g_rank > 0) return;
  const std::string text = "[Rank " + std::to_string(g_rank < 0 ? 0 : g_rank.load()) + "] " +
                           std::string(message) + "\n";
  std::lock_guard<std::mutex> lock(output_mutex());
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

}  // namespace deepspeed::log
