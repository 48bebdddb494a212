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

}  // namespace deepspeed::util
