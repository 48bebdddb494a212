#pragma once
/// \file
/// --bind_cores_to_rank: which CPU cores each local rank gets. Pure functions.

#include <string_view>
#include <vector>

namespace deepspeed::launcher {

/// Parses a core list such as "1,3-5,7" into {1,3,4,5,7}. Items are numbers or inclusive ranges A-B with
/// A <= B, in ascending order without overlap (DeepSpeed's rules). Throws UsageError naming --bind_core_list.
std::vector<int> parse_core_list(std::string_view text);

/// The cores of local rank `local_rank` out of `local_size`: `cores` is cut into local_size equal
/// consecutive slices of cores.size() / local_size cores (leftover cores stay unused, as in DeepSpeed).
/// Throws UsageError when there are fewer cores than ranks.
std::vector<int> cores_for_rank(const std::vector<int>& cores, int local_size, int local_rank);

}  // namespace deepspeed::launcher
