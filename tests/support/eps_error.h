#pragma once
// Errors of a kernel's output against a reference in units of the dtype's epsilon, printed so a device run's
// log reports what every case measured (the GPU tests' bounds are set from those lines).
#include <cmath>
#include <cstdio>
#include <string>

#include <ATen/ATen.h>

namespace deepspeed::testing {

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
