#pragma once
/// \file
/// Small string helpers shared by the config parser, the logger and the launcher-facing code.

#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace deepspeed::util {

/// Concatenates its arguments with operator<< (the project's substitute for std::format, which g++ 12 lacks).
template <typename... Args>
std::string cat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

/// Python's repr() of a float: shortest round-trip digits, exponent form below 1e-4 and from 1e16,
/// "inf"/"nan", and a trailing ".0" for integral values. DeepSpeed's log lines print floats this way.
std::string py_float(double value);

/// Python's repr() of a list of floats: "[0.001, 0.002]".
std::string py_float_list(const std::vector<double>& values);

/// Edit distance (insertions, deletions, substitutions), used to suggest the closest known config key.
std::size_t edit_distance(std::string_view a, std::string_view b);

/// The candidate closest to `word`, or "" when none is close enough to be a plausible typo.
std::string closest_match(std::string_view word, const std::vector<std::string>& candidates);

/// Splits on a single character; empty fields are kept.
std::vector<std::string> split(std::string_view text, char separator);

}  // namespace deepspeed::util
