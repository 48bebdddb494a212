// AVX2 + FMA + F16C CPU Adam kernels (8 lanes), for CPUs without AVX-512. See cpu_adam_avx512.cpp for why the
// ISA comes from a target pragma.
#include <cstddef>
#include <cstdint>

#include <immintrin.h>

#include "src/optim/cpu_adam_kernels.h"

// GCC 12 reports its own intrinsic headers' deliberately undefined registers (`__m512i __Y = __Y;`) as
// maybe-uninitialized once they are inlined here; the warning is spurious.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

namespace deepspeed::optim::detail {
namespace {

struct Avx2 {
  using R = __m256;
  static constexpr std::size_t W = 8;
  static R set1(float x) { return _mm256_set1_ps(x); }
  static R loadu(const float* p) { return _mm256_loadu_ps(p); }
  static void storeu(float* p, R x) { _mm256_storeu_ps(p, x); }
  static R mul(R a, R b) { return _mm256_mul_ps(a, b); }
  static R fma(R a, R b, R c) { return _mm256_fmadd_ps(a, b, c); }
  static R sqrt(R a) { return _mm256_sqrt_ps(a); }
  static R div(R a, R b) { return _mm256_div_ps(a, b); }

  static R load_bf16(const std::uint16_t* p) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
  }
  // Same integer round-to-nearest-even as the AVX-512 path. AVX2 has no 32->16 truncating move, so pack
  // (the values fit in 16 bits, so unsigned saturation never triggers) and gather the two lane halves.
  // Same non-temporal rule as the AVX-512 path (16-byte aligned stores here).
  static void store16(std::uint16_t* p, __m128i x, bool stream) {
    if (stream && (reinterpret_cast<std::uintptr_t>(p) & 15) == 0) _mm_stream_si128(reinterpret_cast<__m128i*>(p), x);
    else _mm_storeu_si128(reinterpret_cast<__m128i*>(p), x);
  }
  static void fence() { _mm_sfence(); }
  static void store_bf16(std::uint16_t* p, R x, bool stream) {
    const __m256i u = _mm256_castps_si256(x);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7FFF))), 16);
    const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q));
    r = _mm256_blendv_epi8(r, _mm256_set1_epi32(0x7FC0), nan);
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0xD8);
    store16(p, _mm256_castsi256_si128(packed), stream);
  }
  static R load_f16(const std::uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static void store_f16(std::uint16_t* p, R x, bool stream) {
    store16(p, _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), stream);
  }
};

#include "src/optim/cpu_adam_simd_body.h"

}  // namespace

AdamKernel avx2_adam_kernel(GradKind g, CopyKind c) { return simd_pick<Avx2>(g, c); }

}  // namespace deepspeed::optim::detail

#pragma GCC pop_options
