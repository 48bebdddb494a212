#pragma once
// Internal to ops::linear: its GEMMs through cuBLASLt (lt_matmul.h), row-major as the layer has them. The weight
// gradient with the bias gradient in its epilogue (BGRADB) reads dy once for both (DS_LINEAR_EPILOGUE=1). By
// default (DS_GEMM_TUNED unset or 1) every GEMM of a 16-bit layer runs the fastest of the algorithms cuBLASLt
// offers for its shape that give the heuristic's first's bits, timed the first time the shape is seen, its bias
// gradient in the epilogue; DS_GEMM_TUNED=any the fastest of all (not reproducible bit for bit), =0 none (at::mm
// and the column-sum kernel). Built where cuBLASLt was found (DS_WITH_CUBLASLT). Measured on an H200 (GPT-2,
// 2026-12-05): +1.2-1.8 % a step; the epilogue alone measured no gain.
#include <ATen/core/Tensor.h>

#include "src/ops/lt_matmul.h"

namespace deepspeed::ops::detail {

/// True when DS_LINEAR_EPILOGUE=1 asks for the epilogue (read at each call) and this build has cuBLASLt.
bool linear_epilogue_requested();

/// True where this build has cuBLASLt and DS_GEMM_TUNED (read at each call) is not 0: timed algorithm choices.
bool gemm_tuning_requested();

/// The choice DS_GEMM_TUNED asks for: unset, 1 or any other value kTimedExact (the heuristic's results, run to
/// run), =any kTimed (the fastest whatever its order of addition), =0 kHeuristic (and the layer off cuBLASLt);
/// kHeuristic in a build without cuBLASLt.
LtChoice tuned_gemm_choice();

/// True when DS_LINEAR_BIAS_KERNEL=1 asks, under DS_GEMM_TUNED=1, for the bias gradient from the column-sum kernel
/// beside a weight GEMM without the BGRADB epilogue (read at each call; an experiment, measured no faster: the
/// epilogue's separate sums ran at ~2.2 TB/s, the column sums at these widths at 1.1-1.4 TB/s).
bool bias_grad_kernel_requested();

// Each of these takes contiguous tensors on one CUDA device, of one dtype of bf16/fp16/fp32 (the bias too), and
// returns false, having written nothing, where cuBLASLt offers no algorithm (the caller then takes its own
// path). On the current stream.

/// The three products as cuBLASLt problems (row-major tensors written transposed, column-major), the ones the
/// functions below run; gemm_bench times the same problems algorithm by algorithm.
LtProblem forward_problem(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, at::Tensor& y);
LtProblem input_grad_problem(const at::Tensor& dy, const at::Tensor& weight, at::Tensor& dx);
LtProblem weight_grad_problem(const at::Tensor& dy, const at::Tensor& x, at::Tensor& dweight, at::Tensor& dbias);

/// An MLP's (ops::gelu_mlp): forward_problem with GELU after the bias, GELU's input kept in gelu_in [rows, out];
/// input_grad_problem with the output multiplied by GELU'(gelu_in) and, where dbias is defined, its column sums
/// written to dbias (kDGeluBGrad; kDGelu without).
LtProblem gelu_forward_problem(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, at::Tensor& y,
                               at::Tensor& gelu_in);
LtProblem dgelu_input_grad_problem(const at::Tensor& dy, const at::Tensor& weight, const at::Tensor& gelu_in,
                                   at::Tensor& dx, at::Tensor& dbias);

/// y [rows, out] = x [rows, in] · weightᵀ, plus bias [out] in the epilogue when it is defined.
bool linear_forward(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, at::Tensor& y,
                    LtChoice choice);

/// dx [rows, in] = dy [rows, out] · weight.
bool linear_input_grad(const at::Tensor& dy, const at::Tensor& weight, at::Tensor& dx, LtChoice choice);

/// dweight [out, in] = dyᵀ · x and, when dbias is defined, dbias [out] = Σ_rows dy in the same call.
bool weight_and_bias_grad(const at::Tensor& dy, const at::Tensor& x, at::Tensor& dweight, at::Tensor& dbias,
                          LtChoice choice = LtChoice::kHeuristic);

}  // namespace deepspeed::ops::detail
