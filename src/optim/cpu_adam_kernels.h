#pragma once
// Internal interface between the CPU Adam dispatcher (cpu_adam_kernel.cpp) and the per-ISA kernels. Kept free
// of LibTorch headers: the ISA files are compiled under `#pragma GCC target`, and anything with external
// linkage they instantiate could leak AVX-512 code into callers on other CPUs.

#include <cstddef>
#include <cstdint>

namespace deepspeed::optim::detail {

// Per-step constants, folded once in double and rounded to fp32 so every path sees the same values.
struct AdamConsts {
  float beta1;
  float beta2;
  float one_minus_beta1;
  float one_minus_beta2;
  float eps;
  float step_size;    // -lr / (1 - β1^t)
  float bc2_rsqrt;    // 1 / sqrt(1 - β2^t)
  float decay;        // L2: wd; decoupled: 1 - lr·wd
  float grad_scale;   // g *= grad_scale first (the engine's unscale / clip factor), when `scaled`
  bool l2;            // g += wd·p before the moments
  bool decoupled;     // p *= (1 - lr·wd) before the update
  bool scaled;
  bool stream_copy;   // the 16-bit copy written with non-temporal stores (where the ISA has them)
};

// Copy kinds: the 16-bit write-back target, or none.
enum class CopyKind : std::uint8_t { kNone, kBFloat16, kFloat16 };
// Gradient kinds, numbered like ElemType.
enum class GradKind : std::uint8_t { kFloat32, kBFloat16, kFloat16 };

// Updates n elements starting at the given pointers (grads and copy already offset by the caller).
using AdamKernel = void (*)(const AdamConsts& k, float* p, const void* g, float* m, float* v, void* copy,
                            std::size_t n);

AdamKernel scalar_adam_kernel(GradKind g, CopyKind c);
AdamKernel avx2_adam_kernel(GradKind g, CopyKind c);    // only call when the CPU has avx2+fma+f16c
AdamKernel avx512_adam_kernel(GradKind g, CopyKind c);  // only call when the CPU has avx512f+bw+vl

// Scalar conversions shared with the scalar kernel; bit-exact with c10::BFloat16 / c10::Half.
std::uint16_t float_to_bf16_rne(float f);
float bf16_to_float(std::uint16_t b);
std::uint16_t float_to_half_rne(float f);
float half_to_float(std::uint16_t h);

}  // namespace deepspeed::optim::detail
