#include "src/engine/step_report.h"

#include <cmath>
#include <cstdio>
#include <fstream>

#include <unistd.h>

#include <c10/cuda/CUDACachingAllocator.h>

#include "deepspeed/util/strings.h"
#include "deepspeed/zero/host_memory.h"

namespace deepspeed::engine {

using util::cat;

namespace {

// DeepSpeed's round(bytes / 1024**3, 2), printed as Python prints the float.
std::string gb(std::int64_t bytes) {
  return util::py_float(std::round(static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0) * 100.0) / 100.0) +
         " GB";
}

std::string fixed(double value, int digits) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", digits, value);
  return buffer;
}

}  // namespace

std::string format_eta(double seconds) {
  const auto total = static_cast<std::int64_t>(std::max(0.0, std::floor(seconds)));
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%lld:%02lld:%02lld", static_cast<long long>(total / 3600),
                static_cast<long long>(total / 60 % 60), static_cast<long long>(total % 60));
  return buffer;
}

std::string progress_fields(std::int64_t step, std::optional<std::int64_t> total_steps,
                            std::int64_t samples_per_step, double samples_per_sec) {
  std::string out;
  if (total_steps && *total_steps > 0) {
    out += cat(", progress=", step, "/", *total_steps, " (",
               fixed(100.0 * static_cast<double>(step) / static_cast<double>(*total_steps), 1), "%)");
  }
  if (samples_per_sec > 0) {
    out += cat(", samples/sec=", fixed(samples_per_sec, 1));
    if (total_steps && *total_steps > step) {
      const double remaining = static_cast<double>((*total_steps - step) * samples_per_step);
      out += cat(", eta=", format_eta(remaining / samples_per_sec));
    }
  }
  return out;
}

std::string ProgressMeter::fields(std::int64_t step) {
  const auto now = Clock::now();
  double rate = 0.0;
  if (last_) {
    const double seconds = std::chrono::duration<double>(now - last_->first).count();
    const std::int64_t steps = step - last_->second;
    if (steps > 0 && seconds > 0) rate = static_cast<double>(steps * samples_per_step_) / seconds;
  }
  last_.emplace(now, step);
  return progress_fields(step, total_, samples_per_step_, rate);
}

std::int64_t host_rss_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::int64_t size_pages = 0, resident_pages = 0;
  if (!(statm >> size_pages >> resident_pages)) return 0;
  return resident_pages * static_cast<std::int64_t>(::sysconf(_SC_PAGESIZE));
}

std::string memory_fields(c10::Device device) {
  std::string out;
  if (device.is_cuda()) {
    namespace alloc = c10::cuda::CUDACachingAllocator;
    const auto stats = alloc::getDeviceStats(device.index());
    const auto all = static_cast<std::size_t>(c10::CachingAllocator::StatType::AGGREGATE);
    out += cat(", MA=", gb(stats.allocated_bytes[all].current), ", Max_MA=", gb(stats.allocated_bytes[all].peak),
               ", CA=", gb(stats.reserved_bytes[all].current), ", Max_CA=", gb(stats.reserved_bytes[all].peak));
    alloc::resetPeakStats(device.index());
  }
  out += cat(", host_RSS=", gb(host_rss_bytes()), ", pinned=", gb(zero::pinned_host_bytes()));
  return out;
}

}  // namespace deepspeed::engine
