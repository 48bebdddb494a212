#pragma once
/// \file
/// A linear layer, `y = x·Wᵀ + b` (at::linear), whose backward reads dy once for the bias gradient: by default on
/// CUDA its GEMMs run through cuBLASLt on timed algorithms with the bias gradient in the weight GEMM's epilogue
/// (below); with DS_GEMM_TUNED=0, LibTorch's GEMMs and deepspeed.cpp's column-sum kernel. Autograd's own backward
/// of at::linear reduces dy over the rows for the bias with LibTorch's generic reduction (GPT-2 1.5B on an H200:
/// 4.7 ms of a 185 ms step for the three biased projections of 48 blocks, ~1.3 TB/s; docs/kernels.md).
///
/// Numerics (DS_GEMM_TUNED=0): y, dx and dW are LibTorch's GEMMs as at::linear's autograd runs them (y = addmm with the bias in the
/// epilogue, dx = dy·W, dW = dyᵀ·x). The bias gradient is Σ_rows dy in fp32, rounded once to the bias's
/// dtype, as LibTorch's sum; only the order of the fp32 additions differs.
///
/// DS_LINEAR_EPILOGUE=1 (read at each call; an experiment, off: no gain measured on an H200): the weight and bias gradients
/// come from one cuBLASLt GEMM whose epilogue sums dy over the rows while the GEMM reads it (BGRADB), so the
/// bias gradient costs no pass of its own; where cuBLASLt offers no algorithm for the shape, or the build has
/// no cuBLASLt, the column-sum kernel as above. Same bounds: dW as LibTorch's GEMM up to summation order, the
/// bias gradient summed in fp32 and rounded once.
///
/// Timed GEMMs, the default on CUDA where the build found cuBLASLt (DS_GEMM_TUNED, read when the layer runs
/// forward; +1.2-1.8 % of a GPT-2 step on an H200, 2026-12-05): bf16/fp16 layers, with or without a bias, run all
/// three GEMMs (y, dx, and dW with the bias gradient in its epilogue) through cuBLASLt, each shape on the fastest
/// of up to eight algorithms its heuristic offers whose output on that first call has the same bits as the
/// heuristic's first's, timed on the first call of the shape (which waits for the device) and cached. So a run
/// gives the heuristic's results bit for bit whichever algorithm the timings chose, and runs reproduce. Same
/// bounds as the GEMMs above against at::linear (cuBLASLt's algorithms, not cuBLAS's). DS_GEMM_TUNED=any: the
/// fastest of the eight whatever its order of addition (results can differ from run to run); DS_GEMM_TUNED=0:
/// none, the layer on LibTorch's GEMMs and the column-sum kernel.
///
/// DS_LINEAR_BIAS_KERNEL=1 with the timed GEMMs (read at each call; an experiment, off: no faster on an H100): the
/// weight GEMM tuned without the BGRADB epilogue and the bias gradient from the column-sum kernel, bit for bit the
/// untuned layer's (cuBLASLt runs the epilogue's sums as a separate kernel, ~2.2 TB/s in a GPT-2 1.5B profile).
///
/// The reference (any device, any dtype, and whenever DS_REFERENCE_LINEAR=1, read at each call) is at::linear.

#include <ATen/core/Tensor.h>

namespace deepspeed::ops {

/// x [*, in], weight [out, in], bias [out] (or undefined: then plain at::linear, unless the GEMMs are timed). One
/// autograd node. The kernel
/// path needs x, weight and bias on one CUDA device, one dtype of bf16/fp16/fp32, and CUDA support built
/// (linear_is_fused). Throws UsageError for mismatched shapes.
at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);

/// True when DS_REFERENCE_LINEAR=1 forces at::linear (read at each call).
bool linear_reference_forced();

/// True when linear() takes the column-sum kernel for these arguments.
bool linear_is_fused(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);

/// True when linear() runs these arguments' GEMMs with timed algorithm choices (DS_GEMM_TUNED not 0, a bf16/fp16
/// layer on CUDA, a build with cuBLASLt).
bool linear_is_tuned(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);

}  // namespace deepspeed::ops
