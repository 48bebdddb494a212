#pragma once
// For the ops/ kernels' GPU tests: inputs that take the element-load path, and errors against a reference in
// units of the dtype's epsilon, printed so a device run's log reports what every case measured (the tests'
// bounds are set from those lines).
#include <cmath>
#include <cstdio>
#include <string>

#include <ATen/ATen.h>

namespace deepspeed::testing {

/// A contiguous copy of `v` one element past its buffer's start, so not 16-byte aligned: the kernels fall back
/// to element loads for it.
inline at::Tensor unaligned_copy(const at::Tensor& v) {
  auto buffer = at::empty({v.numel() + 1}, v.options());
  auto view = buffer.narrow(0, 1, v.numel()).view(v.sizes());
  view.copy_(v);
  return view;
}

/// bf16 2^-7, fp16 2^-10, anything else fp32's 2^-23.
inline double epsilon_of(at::ScalarType t) {
  return t == at::kBFloat16 ? std::ldexp(1.0, -7) : t == at::kHalf ? std::ldexp(1.0, -10) : std::ldexp(1.0, -23);
}

/// max |got − want| / (|want| + rms(want)) over the elements, in units of `eps`: values far below the tensor's
/// typical size are judged against that size rather than against themselves. Prints
/// "[tag] label what max_abs … max_rel … (N eps)".
inline double error_in_eps(const at::Tensor& got, const at::Tensor& want, double eps, const char* tag,
                           const char* what, const std::string& label) {
  const auto diff = (got - want).abs();
  const double rms = want.pow(2).mean().sqrt().item<double>();
  const double rel = (diff / (want.abs() + rms + 1e-30)).max().item<double>();
  std::printf("[%s] %-44s %-12s max_abs %.3e max_rel %.3e (%.2f eps)\n", tag, label.c_str(), what,
              diff.max().item<double>(), rel, rel / eps);
  return rel / eps;
}

}  // namespace deepspeed::testing
