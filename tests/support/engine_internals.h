#pragma once
// Test-only access to an Engine's internals (the engine's own code reaches them through EngineImpl). Not
// installed, not part of the API: a test that needs more than what is here should test the component itself.
#include "deepspeed/engine/engine.h"
#include "src/engine/engine_impl.h"

namespace deepspeed {

struct EngineInternals {
  static EngineImpl& impl(const Engine& engine) { return *engine.impl_; }
  static zero::Strategy& zero(const Engine& engine) { return impl(engine).zero(); }
};

}  // namespace deepspeed
