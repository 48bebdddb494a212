#pragma once
// Tests switch the ops' environment variables (DS_GEMM_TUNED, DS_REFERENCE_*, ...) for a scope or, as a
// namespace-scope object, for a whole test binary.
#include <cstdlib>
#include <string>

namespace deepspeed::testing {

/// Sets `name` to `value` (unsets it where `value` is null) and puts back what it was when the scope ends, an
/// ASSERT's early return included.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    const char* before = std::getenv(name);
    had_ = before != nullptr;
    if (had_) before_ = before;
    value ? setenv(name, value, 1) : unsetenv(name);
  }
  ~ScopedEnv() { had_ ? setenv(name_.c_str(), before_.c_str(), 1) : unsetenv(name_.c_str()); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_, before_;
  bool had_ = false;
};

}  // namespace deepspeed::testing
