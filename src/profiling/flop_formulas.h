#pragma once
// Internal to ds_profiling: DeepSpeed's per-operation MAC/FLOP estimates (profiler.py's `_*_flops_compute`),
// keyed by ATen operator name instead of by the Python function DeepSpeed patches.

#include <cstdint>
#include <optional>
#include <string_view>

#include <ATen/core/ivalue.h>
#include <c10/util/ArrayRef.h>

namespace deepspeed::profiling::detail {

struct OpCount {
  std::int64_t macs = 0;
  std::int64_t flops = 0;
};

/// The estimate for one call of `op_name` ("aten::linear", ...) with the boxed arguments `inputs`, or nullopt
/// when the operator is not one the profiler counts (it is then transparent: operators it calls are looked at).
/// A recognised operator with a zero estimate (embedding, dropout) returns {0, 0}; it still hides the operators
/// it calls. Never throws: arguments of an unexpected form give nullopt.
std::optional<OpCount> count_op(std::string_view op_name, c10::ArrayRef<const c10::IValue> inputs) noexcept;

}  // namespace deepspeed::profiling::detail
