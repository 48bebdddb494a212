#pragma once
// The DS_* switches. Each is read where it acts, at every call, so a test or a run can set it at any time; it
// is on only for its exact value, so a mistyped value leaves it off rather than half on. Header-only: the
// CUDA kernels' launchers read switches too.
#include <cstdlib>
#include <cstring>

namespace deepspeed::util {

/// True when the environment variable `name` is set to exactly `value`.
inline bool env_is(const char* name, const char* value = "1") {
  const char* v = std::getenv(name);
  return v != nullptr && std::strcmp(v, value) == 0;
}

/// The environment variable `name` as a whole non-negative decimal number; `fallback` when it is unset, and
/// also when it is anything else (a mistyped value leaves the default in force, as env_is leaves a switch off).
inline int env_count(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0' || std::strlen(v) > 6) return fallback;
  int n = 0;
  for (const char* c = v; *c != '\0'; ++c) {
    if (*c < '0' || *c > '9') return fallback;
    n = n * 10 + (*c - '0');
  }
  return n;
}

}  // namespace deepspeed::util
