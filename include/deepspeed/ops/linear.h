#pragma once
/// \file
/// A linear layer, `y = x·Wᵀ + b` (at::linear), whose backward sums the bias gradient with deepspeed.cpp's
/// column-sum kernel: dy read once, at memory speed. Autograd's own backward of at::linear takes the same
/// GEMMs but reduces dy over the rows for the bias with LibTorch's generic reduction (GPT-2 1.5B on an H200:
/// 4.7 ms of a 185 ms step for the three biased projections of 48 blocks, ~1.3 TB/s; docs/kernels.md).
///
/// Numerics: y, dx and dW are LibTorch's GEMMs as at::linear's autograd runs them (y = addmm with the bias in the
/// epilogue, dx = dy·W, dW = dyᵀ·x). The bias gradient is Σ_rows dy in fp32, rounded once to the bias's
/// dtype, as LibTorch's sum; only the order of the fp32 additions differs.
///
/// DS_LINEAR_EPILOGUE=1 (read at each call; an experiment, off: no gain measured on an H200): the weight and bias gradients
/// come from one cuBLASLt GEMM whose epilogue sums dy over the rows while the GEMM reads it (BGRADB), so the
/// bias gradient costs no pass of its own; where cuBLASLt offers no algorithm for the shape, or the build has
/// no cuBLASLt, the column-sum kernel as above. Same bounds: dW as LibTorch's GEMM up to summation order, the
/// bias gradient summed in fp32 and rounded once.
///
/// DS_GEMM_TUNED=1 (read when the layer runs forward; opt-in, +0.7-1.9 % of a GPT-2 step on an H200): bf16/fp16 layers, with
/// or without a bias, run all three GEMMs (y, dx, and dW with the bias gradient in its epilogue) through
/// cuBLASLt with the fastest of up to eight algorithms its heuristic offers for each shape, timed on the first
/// call of the shape (which waits for the device) and cached. Same bounds as the GEMMs above, but an algorithm
/// chosen by timing can differ between runs, so results are not bitwise reproducible from run to run.
///
/// DS_LINEAR_BIAS_KERNEL=1 with DS_GEMM_TUNED=1 (read at each call; an experiment, off: no faster on an H100): the
/// weight GEMM tuned without the BGRADB epilogue and the bias gradient from the column-sum kernel, bit for bit the
/// untuned layer's (cuBLASLt runs the epilogue's sums as a separate kernel, ~2.2 TB/s in a GPT-2 1.5B profile).
///
/// The reference (any device, any dtype, and whenever DS_REFERENCE_LINEAR=1, read at each call) is at::linear.

#include <ATen/core/Tensor.h>

namespace deepspeed::ops {

/// x [*, in], weight [out, in], bias [out] (or undefined: then plain at::linear, unless DS_GEMM_TUNED=1). One
/// autograd node. The kernel
/// path needs x, weight and bias on one CUDA device, one dtype of bf16/fp16/fp32, and CUDA support built
/// (linear_is_fused). Throws UsageError for mismatched shapes.
at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);

/// True when DS_REFERENCE_LINEAR=1 forces at::linear (read at each call).
bool linear_reference_forced();

/// True when linear() takes the column-sum kernel for these arguments.
bool linear_is_fused(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);

/// True when linear() runs these arguments' GEMMs with timed algorithm choices (DS_GEMM_TUNED=1, a bf16/fp16
/// layer on CUDA, a build with cuBLASLt).
bool linear_is_tuned(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);

}  // namespace deepspeed::ops
