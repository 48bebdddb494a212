#pragma once
/// \file
/// A transformer MLP, `gelu_tanh(x·W1ᵀ + b1)·W2ᵀ + b2`, as one autograd operation whose bias-and-GELU work runs
/// in the epilogues of its GEMMs (cuBLASLt), so that the MLP's widest activation is never read or written by
/// a pass of its own:
/// - forward, the first GEMM adds b1, writes GELU's input (kept for backward) and GELU's output at once
///   (CUBLASLT_EPILOGUE_GELU_AUX_BIAS); the second adds b2 in its epilogue;
/// - backward, the second layer's input-gradient GEMM multiplies by GELU'(its kept input)
///   (CUBLASLT_EPILOGUE_DGELU); each layer's weight-gradient GEMM sums its bias gradient in its epilogue (BGRADB),
///   reading the output gradient it reads anyway. (Until 2026-12-05 the first bias's gradient came from
///   CUBLASLT_EPILOGUE_DGELU_BGRAD, whose sums cuBLASLt runs on Hopper as a separate kernel costing 2.6× the GEMM.)
/// Against at::linear → ops::bias_gelu → at::linear this saves the bias+GELU kernels' passes (forward: read and
/// write the activation; backward: read two, write one) at the price of heavier GEMM epilogues.
///
/// Numerics: GELU's input is the fp32 accumulator plus b1, rounded once to x's dtype (kept) — the unfused path
/// rounds the GEMM's output before adding b1; GELU is evaluated by cuBLASLt in fp32 from the unrounded value and
/// rounded once. GELU'(input) × (dy·W2) in fp32, rounded once; the bias gradients are sums in fp32 of the
/// rounded gradients (as the reference's), rounded once. Weight and input gradients are plain GEMMs of the
/// rounded operands.
///
/// Measured slower with DGELU_BGRAD: on an H200 (cuBLASLt of CUDA 13, 2026-12-05) a GPT-2 step took 4-8 % longer,
/// on an H100 a 1.5B step 8.8 % longer, nearly all of it DGELU_BGRAD's separate sums (docs/kernels.md). The
/// DGELU + BGRADB form above is still 1.0 % slower there (H100, 2026-12-05: DGELU and BGRADB cost what the
/// bias+GELU pass they replace costs), so it stays opt-in.
/// Opt-in: DS_MLP_EPILOGUE=1 (read at each call), bf16/fp16 on CUDA with cuBLASLt, widths multiples of 8.
/// Each GEMM's algorithm is timed as ops::linear's are (DS_GEMM_TUNED, ops/linear.h). Elsewhere, and for anything the fused path
/// does not take, the reference: at::linear, at::gelu(·, "tanh"), at::linear under autograd.

#include <cstdint>

#include <ATen/core/Tensor.h>

namespace deepspeed::ops {

/// x [*, C], fc_weight [F, C], fc_bias [F], proj_weight [C', F], proj_bias [C'] → [*, C']. Every rank calls it
/// as it would call the layers (no communication); on the current stream. Throws UsageError for mismatched
/// shapes.
at::Tensor gelu_mlp(const at::Tensor& x, const at::Tensor& fc_weight, const at::Tensor& fc_bias,
                    const at::Tensor& proj_weight, const at::Tensor& proj_bias);

/// The reference on any device: at::linear, at::gelu(·, "tanh"), at::linear.
at::Tensor gelu_mlp_reference(const at::Tensor& x, const at::Tensor& fc_weight, const at::Tensor& fc_bias,
                              const at::Tensor& proj_weight, const at::Tensor& proj_bias);

/// True when DS_MLP_EPILOGUE=1 asks for the epilogue path (read at each call).
bool gelu_mlp_epilogue_requested();

/// True when gelu_mlp() takes the epilogue path for these arguments: requested, the build has CUDA ops and
/// cuBLASLt, every tensor on one CUDA device in one dtype of bf16/fp16, C, F and C' multiples of 8.
bool gelu_mlp_is_fused(const at::Tensor& x, const at::Tensor& fc_weight, const at::Tensor& fc_bias,
                       const at::Tensor& proj_weight, const at::Tensor& proj_bias);

/// How many of gelu_mlp()'s epilogue GEMMs (GELU_AUX_BIAS forward, DGELU backward) have run in this
/// process: where cuBLASLt offers no algorithm for a shape, the fused path computes the same values unfused and
/// this does not advance (for tests and benchmarks: was the epilogue used?).
std::int64_t gelu_mlp_epilogue_gemms();

}  // namespace deepspeed::ops
