// Scalar CPU Adam: the fallback for CPUs without AVX2, the tail-free reference the SIMD kernels are tested
// against, and the definition of the exact operation order all paths share. Built with -ffp-contract=off so
// the compiler cannot fuse a multiply and add that the SIMD kernels keep separate.
#include <cmath>
#include <cstring>

#include <c10/util/Half.h>

#include "src/optim/cpu_adam_kernels.h"

namespace deepspeed::optim::detail {

std::uint16_t float_to_bf16_rne(float f) {
  // NaN keeps a quiet NaN: the rounding add could otherwise carry a payload into the exponent (±inf).
  if (std::isnan(f)) return 0x7FC0;
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<std::uint16_t>(u >> 16);
}

float bf16_to_float(std::uint16_t b) {
  const std::uint32_t u = static_cast<std::uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

std::uint16_t float_to_half_rne(float f) { return c10::detail::fp16_ieee_from_fp32_value(f); }
float half_to_float(std::uint16_t h) { return c10::detail::fp16_ieee_to_fp32_value(h); }

namespace {

struct F32 {
  static float load(const void* base, std::size_t i) { return static_cast<const float*>(base)[i]; }
};
struct BF16 {
  static float load(const void* base, std::size_t i) {
    return bf16_to_float(static_cast<const std::uint16_t*>(base)[i]);
  }
  static void store(void* base, std::size_t i, float x) { static_cast<std::uint16_t*>(base)[i] = float_to_bf16_rne(x); }
};
struct F16 {
  static float load(const void* base, std::size_t i) {
    return half_to_float(static_cast<const std::uint16_t*>(base)[i]);
  }
  static void store(void* base, std::size_t i, float x) { static_cast<std::uint16_t*>(base)[i] = float_to_half_rne(x); }
};
struct NoCopy {
  static void store(void*, std::size_t, float) {}
};

template <class G, class C>
void scalar_kernel(const AdamConsts& k, float* p, const void* g, float* m, float* v, void* copy, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    float grad = G::load(g, i);
    if (k.scaled) grad = grad * k.grad_scale;
    float param = p[i];
    if (k.l2) grad = std::fma(param, k.decay, grad);
    const float mi = std::fma(grad, k.one_minus_beta1, m[i] * k.beta1);
    const float vi = std::fma(grad * grad, k.one_minus_beta2, v[i] * k.beta2);
    const float denom = std::fma(std::sqrt(vi), k.bc2_rsqrt, k.eps);
    const float update = mi / denom;
    if (k.decoupled) param = param * k.decay;
    param = std::fma(update, k.step_size, param);
    p[i] = param;
    m[i] = mi;
    v[i] = vi;
    C::store(copy, i, param);
  }
}

template <class G>
AdamKernel pick_copy(CopyKind c) {
  switch (c) {
    case CopyKind::kNone: return &scalar_kernel<G, NoCopy>;
    case CopyKind::kBFloat16: return &scalar_kernel<G, BF16>;
    case CopyKind::kFloat16: return &scalar_kernel<G, F16>;
  }
  return nullptr;
}

}  // namespace

AdamKernel scalar_adam_kernel(GradKind g, CopyKind c) {
  switch (g) {
    case GradKind::kFloat32: return pick_copy<F32>(c);
    case GradKind::kBFloat16: return pick_copy<BF16>(c);
    case GradKind::kFloat16: return pick_copy<F16>(c);
  }
  return nullptr;
}

}  // namespace deepspeed::optim::detail
