#pragma once
// Shared by the host benches (cpu_adam_bench, host_optimizer_bench): sizes with K/M/G suffixes, medians.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace deepspeed::bench {

/// "64M" → 64·2^20 (K, M and G are powers of 1024); without a suffix, the number itself.
inline std::int64_t parse_size(const std::string& s) {
  const char suffix = s.empty() ? '\0' : s.back();
  const std::int64_t mult = suffix == 'M' ? (1 << 20) : suffix == 'K' ? (1 << 10) : suffix == 'G' ? (1 << 30) : 1;
  return std::stoll(mult == 1 ? s : s.substr(0, s.size() - 1)) * mult;
}

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace deepspeed::bench
