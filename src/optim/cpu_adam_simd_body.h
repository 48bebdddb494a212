// The CPU Adam loop written once over a vector abstraction `V`; included by each ISA file inside its
// `#pragma GCC target` region and an anonymous namespace (so every instantiation stays local to that file and
// carries that file's target). No #includes here: headers pulled in under the pragma would compile their
// inline functions with AVX-512 enabled and could be picked by the linker for code that runs anywhere.
//
// V provides: R (register type), W (lanes), set1, loadu, storeu, mul, fma, sqrt, div, load_bf16, load_f16,
// store_bf16, store_f16 (16-bit pointers are uint16_t; a `stream` flag asks for a non-temporal store where
// the pointer allows one), fence (orders non-temporal stores before what follows).
//
// The operation order must stay identical to scalar_kernel in cpu_adam_scalar.cpp (tests compare bitwise).

template <class V>
struct VecConsts {
  typename V::R beta1, beta2, one_minus_beta1, one_minus_beta2, eps, step_size, bc2_rsqrt, decay, grad_scale;
  bool l2, decoupled, scaled, stream_copy;
  explicit VecConsts(const AdamConsts& k)
      : beta1(V::set1(k.beta1)),
        beta2(V::set1(k.beta2)),
        one_minus_beta1(V::set1(k.one_minus_beta1)),
        one_minus_beta2(V::set1(k.one_minus_beta2)),
        eps(V::set1(k.eps)),
        step_size(V::set1(k.step_size)),
        bc2_rsqrt(V::set1(k.bc2_rsqrt)),
        decay(V::set1(k.decay)),
        grad_scale(V::set1(k.grad_scale)),
        l2(k.l2),
        decoupled(k.decoupled),
        scaled(k.scaled),
        stream_copy(k.stream_copy) {}
};

template <class V, GradKind G>
inline typename V::R load_grad(const void* g, std::size_t i) {
  if constexpr (G == GradKind::kFloat32) return V::loadu(static_cast<const float*>(g) + i);
  else if constexpr (G == GradKind::kBFloat16) return V::load_bf16(static_cast<const std::uint16_t*>(g) + i);
  else return V::load_f16(static_cast<const std::uint16_t*>(g) + i);
}

template <class V, CopyKind C>
inline void store_copy(void* c, std::size_t i, typename V::R x, bool stream) {
  if constexpr (C == CopyKind::kBFloat16) V::store_bf16(static_cast<std::uint16_t*>(c) + i, x, stream);
  else if constexpr (C == CopyKind::kFloat16) V::store_f16(static_cast<std::uint16_t*>(c) + i, x, stream);
}

// W elements at offset i.
template <class V, GradKind G, CopyKind C>
inline void adam_vector(const VecConsts<V>& k, float* p, const void* g, float* m, float* v, void* copy,
                        std::size_t i) {
  using R = typename V::R;
  R grad = load_grad<V, G>(g, i);
  if (k.scaled) grad = V::mul(grad, k.grad_scale);
  R param = V::loadu(p + i);
  if (k.l2) grad = V::fma(param, k.decay, grad);
  const R mi = V::fma(grad, k.one_minus_beta1, V::mul(V::loadu(m + i), k.beta1));
  const R vi = V::fma(V::mul(grad, grad), k.one_minus_beta2, V::mul(V::loadu(v + i), k.beta2));
  const R denom = V::fma(V::sqrt(vi), k.bc2_rsqrt, k.eps);
  const R update = V::div(mi, denom);
  if (k.decoupled) param = V::mul(param, k.decay);
  param = V::fma(update, k.step_size, param);
  V::storeu(p + i, param);
  V::storeu(m + i, mi);
  V::storeu(v + i, vi);
  store_copy<V, C>(copy, i, param, k.stream_copy);
}

template <GradKind G>
constexpr std::size_t grad_bytes() {
  return G == GradKind::kFloat32 ? 4 : 2;
}

template <class V, GradKind G, CopyKind C>
void simd_kernel(const AdamConsts& consts, float* p, const void* g, float* m, float* v, void* copy,
                 std::size_t n) {
  const VecConsts<V> k(consts);
  constexpr std::size_t W = V::W;
  std::size_t i = 0;
#pragma GCC unroll 4
  for (; i + W <= n; i += W) adam_vector<V, G, C>(k, p, g, m, v, copy, i);
  // Streamed stores are weakly ordered: they must be globally visible before the caller reports the range
  // done (a DMA to the device reads the copy next).
  if constexpr (C != CopyKind::kNone) {
    if (k.stream_copy) V::fence();
  }
  if (i == n) return;
  // Tail: run one full vector on zero-padded copies so the last elements take the same instructions as the
  // rest (bit-identical to the scalar path) without reading or writing past the caller's arrays.
  const std::size_t r = n - i;
  constexpr std::size_t gb = grad_bytes<G>();
  alignas(64) float tp[W] = {}, tm[W] = {}, tv[W] = {};
  alignas(64) unsigned char tg[W * 4] = {};
  alignas(64) std::uint16_t tc[W] = {};
  __builtin_memcpy(tp, p + i, r * 4);
  __builtin_memcpy(tm, m + i, r * 4);
  __builtin_memcpy(tv, v + i, r * 4);
  __builtin_memcpy(tg, static_cast<const unsigned char*>(g) + i * gb, r * gb);
  VecConsts<V> cached = k;
  cached.stream_copy = false;  // the tail goes through the stack
  adam_vector<V, G, C>(cached, tp, tg, tm, tv, tc, 0);
  __builtin_memcpy(p + i, tp, r * 4);
  __builtin_memcpy(m + i, tm, r * 4);
  __builtin_memcpy(v + i, tv, r * 4);
  if constexpr (C != CopyKind::kNone) __builtin_memcpy(static_cast<std::uint16_t*>(copy) + i, tc, r * 2);
}

template <class V, GradKind G>
AdamKernel simd_pick_copy(CopyKind c) {
  switch (c) {
    case CopyKind::kNone: return &simd_kernel<V, G, CopyKind::kNone>;
    case CopyKind::kBFloat16: return &simd_kernel<V, G, CopyKind::kBFloat16>;
    case CopyKind::kFloat16: return &simd_kernel<V, G, CopyKind::kFloat16>;
  }
  return nullptr;
}

template <class V>
AdamKernel simd_pick(GradKind g, CopyKind c) {
  switch (g) {
    case GradKind::kFloat32: return simd_pick_copy<V, GradKind::kFloat32>(c);
    case GradKind::kBFloat16: return simd_pick_copy<V, GradKind::kBFloat16>(c);
    case GradKind::kFloat16: return simd_pick_copy<V, GradKind::kFloat16>(c);
  }
  return nullptr;
}
