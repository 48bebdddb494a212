#pragma once
/// \file
/// Bias + GELU (tanh approximation), fused on CUDA: a transformer MLP's `gelu(x·Wᵀ + b)` with the GEMM run
/// without its bias (`at::linear(x, W)`) and the bias added here.
///
/// Unfused (`at::linear(x, W, b)` then `at::gelu(·, "tanh")`), the forward costs the same passes, but in backward
/// autograd computes GELU's input gradient and then sums it over all rows for the bias in a second pass over
/// the MLP's widest activation. Fused, the backward reads dy and x once, writes dx and sums the bias gradient
/// on the way (docs/kernels.md).
///
/// Numerics (both paths): h = x + bias computed in fp32 and rounded to x's dtype, GELU computed in fp32 from that
/// rounded h and rounded once; dx = dy·GELU'(h) rounded once; the bias gradient is Σ_rows dx in fp32, rounded
/// once to the bias's dtype. Against `at::linear(x, W, b)` the only difference is that the GEMM's output is
/// rounded before the bias is added (the epilogue adds it before rounding). The fused kernels compute GELU of
/// 16-bit inputs in a form with fewer instructions (h·σ(2u), the same function), so a 16-bit y or dx may be the
/// value adjacent to the reference's; fp32 inputs, and 16-bit ones with DS_BIAS_GELU_TANHF=1, match it bit for
/// bit.
///
/// The reference (any device, any floating dtype): the same formula in ATen ops under autograd, also used when
/// DS_REFERENCE_BIAS_GELU=1.

#include <ATen/core/Tensor.h>

namespace deepspeed::ops {

/// gelu_tanh(x + bias) over the last dimension, as one autograd operation.
///
/// Shapes: x [*, N], bias [N]. dtypes: x floating; bias x's dtype or fp32. Fused when both are on one CUDA
/// device, x is bf16/fp16/fp32 and CUDA support was built (bias_gelu_is_fused); otherwise the reference.
/// Non-contiguous x is copied. Throws UsageError for mismatched shapes or dtypes.
at::Tensor bias_gelu(const at::Tensor& x, const at::Tensor& bias);

/// The reference path on any device.
at::Tensor bias_gelu_reference(const at::Tensor& x, const at::Tensor& bias);

/// True when DS_REFERENCE_BIAS_GELU=1 forces the reference (read at each call).
bool bias_gelu_reference_forced();

/// True when bias_gelu() takes the CUDA kernels for these arguments.
bool bias_gelu_is_fused(const at::Tensor& x, const at::Tensor& bias);

}  // namespace deepspeed::ops
