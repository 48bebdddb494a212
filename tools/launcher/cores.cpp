#include "cores.h"

#include <charconv>
#include <string>

#include "deepspeed/util/error.h"
#include "deepspeed/util/strings.h"

namespace deepspeed::launcher {
namespace {

using util::cat;

int parse_core(std::string_view item, std::string_view whole) {
  int value = 0;
  const auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), value);
  if (item.empty() || ec != std::errc() || ptr != item.data() + item.size() || value < 0) {
    throw UsageError(cat("--bind_core_list: '", item, "' in '", whole, "' is not a core number (expected e.g. 1,3-5,7)"));
  }
  return value;
}

}  // namespace

std::vector<int> parse_core_list(std::string_view text) {
  std::vector<int> cores;
  int last = -1;
  for (const auto& item : util::split(text, ',')) {
    const auto dash = item.find('-');
    const int first = parse_core(std::string_view(item).substr(0, dash), text);
    const int end = dash == std::string::npos ? first : parse_core(std::string_view(item).substr(dash + 1), text);
    if (end < first) throw UsageError(cat("--bind_core_list: range '", item, "' ends before it starts"));
    if (first <= last) {
      throw UsageError(cat("--bind_core_list: '", item, "' in '", text, "' overlaps or is not in ascending order"));
    }
    for (int c = first; c <= end; ++c) cores.push_back(c);
    last = end;
  }
  return cores;
}

std::vector<int> cores_for_rank(const std::vector<int>& cores, int local_size, int local_rank) {
  const int per_rank = local_size > 0 ? static_cast<int>(cores.size()) / local_size : 0;
  if (per_rank < 1) {
    throw UsageError(cat("--bind_cores_to_rank: ", cores.size(), " cores cannot give each of ", local_size,
                         " local ranks at least one core"));
  }
  const auto begin = cores.begin() + static_cast<std::ptrdiff_t>(per_rank) * local_rank;
  return {begin, begin + per_rank};
}

}  // namespace deepspeed::launcher
