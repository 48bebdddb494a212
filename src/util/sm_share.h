#pragma once
// How a training thread's kernels share the device's SMs with work it left running on a side stream (the
// optimizer step behind the next forward, src/zero/step_behind_forward.h). Two per-thread numbers, set by the
// one who starts the side-stream work and read by the launchers of the kernels involved:
// - side_stream_sms(): while set (ScopedSideStreamSms), a launcher able to bound its grid (the device Adam)
//   occupies at most that many SMs, so that a kernel of the compute stream keeps the rest. Without a bound, a
//   bandwidth-bound kernel launched beside a GEMM fills every SM with its blocks and the two run one after the
//   other instead of together.
// - reserved_sms(): while side-stream work may be running, the SMs it holds; a GEMM launcher that can size
//   itself for fewer SMs (cuBLASLt's SM count target) leaves them, rather than waiting for them or sizing its
//   persistent grid for the whole device.
// Thread-local like LibTorch's current stream: the training thread's launches only. Header-only, since the CUDA
// launchers include it too.

namespace deepspeed::util {

namespace detail {
inline thread_local int side_stream_sms = 0;
inline thread_local int reserved_sms = 0;
}  // namespace detail

/// SMs a kernel launched now should occupy at most (0: no bound).
inline int side_stream_sms() { return detail::side_stream_sms; }
/// SMs that side-stream work may hold now (0: none).
inline int reserved_sms() { return detail::reserved_sms; }
/// Set by whoever starts or ends side-stream work (0: none any more).
inline void set_reserved_sms(int sms) { detail::reserved_sms = sms; }

/// Bounds the SMs of the kernels launched on this thread within the scope (0: none); restores the previous
/// bound on exit.
class ScopedSideStreamSms {
 public:
  explicit ScopedSideStreamSms(int sms) : previous_(detail::side_stream_sms) { detail::side_stream_sms = sms; }
  ~ScopedSideStreamSms() { detail::side_stream_sms = previous_; }
  ScopedSideStreamSms(const ScopedSideStreamSms&) = delete;
  ScopedSideStreamSms& operator=(const ScopedSideStreamSms&) = delete;

 private:
  int previous_;
};

}  // namespace deepspeed::util
