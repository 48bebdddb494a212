#pragma once
// DS_MEMORY_TRACE=N: what the device's peak is made of, for the first N backward passes of this process. One
// line per event of the ZeRO layer's own transient buffers (a parameter's gradient handed to its bucket, a
// bucket's send buffer opened or freed or waited for a landing before it opened, a ZeRO-3 unit gathered or
// released) with the allocator's bytes now and its peak so far, and the live send buffers and gathered
// elements. No synchronisation: "now" is the
// allocator's own count in launch order, which is what its peak counts. Diagnostics only (stderr); off, it
// costs one relaxed load per event.
#include <atomic>
#include <cstddef>
#include <cstdint>

#include <c10/core/Device.h>

namespace deepspeed::zero::memory_trace {

/// Whether events are printed now.
bool on();
/// A backward pass begins (counts toward N).
void begin_backward();
/// Live bytes of gradient send buffers (+ opened, − freed).
void send_buffer(std::int64_t delta_bytes);
/// Prints `event` with ids `a`, `b`, the allocator's state on `device` and `gathered_numel` (stage 3; -1 elsewhere).
void event(const char* what, std::size_t a, std::size_t b, c10::Device device, std::int64_t gathered_numel = -1);

}  // namespace deepspeed::zero::memory_trace
