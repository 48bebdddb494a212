// AVX-512 CPU Adam kernels (16 lanes). Compiled under a target pragma instead of -mavx512f so the library
// runs on any x86-64; the dispatcher calls in only after __builtin_cpu_supports says the CPU has it.
#include <cstddef>
#include <cstdint>

#include <immintrin.h>

#include "src/optim/cpu_adam_kernels.h"

// GCC 12 reports its own intrinsic headers' deliberately undefined registers (`__m512i __Y = __Y;`) as
// maybe-uninitialized once they are inlined here; the warning is spurious.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")

namespace deepspeed::optim::detail {
namespace {

struct Avx512 {
  using R = __m512;
  static constexpr std::size_t W = 16;
  static R set1(float x) { return _mm512_set1_ps(x); }
  static R loadu(const float* p) { return _mm512_loadu_ps(p); }
  static void storeu(float* p, R x) { _mm512_storeu_ps(p, x); }
  static R mul(R a, R b) { return _mm512_mul_ps(a, b); }
  static R fma(R a, R b, R c) { return _mm512_fmadd_ps(a, b, c); }
  static R sqrt(R a) { return _mm512_sqrt_ps(a); }
  static R div(R a, R b) { return _mm512_div_ps(a, b); }

  // bf16 is the top half of an fp32, so widening is a zero-extend and a shift.
  static R load_bf16(const std::uint16_t* p) {
    const __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
  }
  // Round-to-nearest-even in integer arithmetic, NaN -> 0x7FC0, exactly c10's scalar rule. (AVX512_BF16's
  // vcvtneps2bf16 would be one instruction but flushes subnormals, which at::kBFloat16 does not.)
  // Non-temporal when asked and 32-byte aligned: the copy is read next by a DMA to the device, not by this
  // core, and a cached store would first read the line it overwrites.
  static void store16(std::uint16_t* p, __m256i x, bool stream) {
    if (stream && (reinterpret_cast<std::uintptr_t>(p) & 31) == 0) _mm256_stream_si256(reinterpret_cast<__m256i*>(p), x);
    else _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), x);
  }
  static void fence() { _mm_sfence(); }
  static void store_bf16(std::uint16_t* p, R x, bool stream) {
    const __m512i u = _mm512_castps_si512(x);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF))), 16);
    r = _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), _mm512_set1_epi32(0x7FC0));
    store16(p, _mm512_cvtepi32_epi16(r), stream);
  }
  static R load_f16(const std::uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static void store_f16(std::uint16_t* p, R x, bool stream) {
    store16(p, _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), stream);
  }
};

#include "src/optim/cpu_adam_simd_body.h"

}  // namespace

AdamKernel avx512_adam_kernel(GradKind g, CopyKind c) { return simd_pick<Avx512>(g, c); }

}  // namespace deepspeed::optim::detail

#pragma GCC pop_options
