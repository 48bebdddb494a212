#include "src/zero/memory_trace.h"

#include <cstdio>
#include <cstdlib>
#include <string>

#include <ATen/DeviceAccelerator.h>

namespace deepspeed::zero::memory_trace {

namespace {

const long kPasses = [] {
  const char* env = std::getenv("DS_MEMORY_TRACE");
  return env ? std::strtol(env, nullptr, 10) : 0L;
}();
std::atomic<long> passes{0};
std::atomic<std::int64_t> send_bytes{0};

double gib(std::int64_t bytes) { return static_cast<double>(bytes) / (1 << 30); }

}  // namespace

bool on() {
  if (kPasses <= 0) return false;
  const long pass = passes.load(std::memory_order_relaxed);
  return pass > 0 && pass <= kPasses;
}

void begin_backward() {
  if (kPasses > 0) ++passes;
}

void send_buffer(std::int64_t delta_bytes) {
  if (kPasses > 0) send_bytes += delta_bytes;
}

void event(const char* what, std::size_t a, std::size_t b, c10::Device device, std::int64_t gathered_numel) {
  if (!on()) return;
  std::int64_t now = 0, peak = 0;
  if (device.is_cuda()) {
    const auto stats = at::accelerator::getDeviceStats(device.index());
    const auto all = static_cast<std::size_t>(c10::CachingAllocator::StatType::AGGREGATE);
    now = stats.allocated_bytes[all].current;
    peak = stats.allocated_bytes[all].peak;
  }
  std::fprintf(stderr, "memory trace %ld: %s %zu %zu | allocated %.3f GiB, peak %.3f GiB | send buffers %.3f GiB%s\n",
               passes.load(), what, a, b, gib(now), gib(peak), gib(send_bytes.load()),
               gathered_numel < 0 ? "" : (" | gathered " + std::to_string(gathered_numel)).c_str());
}

}  // namespace deepspeed::zero::memory_trace
