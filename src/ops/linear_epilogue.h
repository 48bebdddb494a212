#pragma once
// Internal to ops::linear: the weight gradient with the bias gradient in the GEMM's epilogue (cuBLASLt's
// BGRADB), so dy is reduced over the rows while the GEMM reads it, not in a pass of its own. Built where
// cuBLASLt was found (DS_WITH_CUBLASLT); off unless DS_LINEAR_EPILOGUE=1 (an experiment, until measured).
#include <ATen/core/Tensor.h>

namespace deepspeed::ops::detail {

/// True when DS_LINEAR_EPILOGUE=1 asks for the epilogue (read at each call) and this build has cuBLASLt.
bool linear_epilogue_requested();

/// dweight [N, K] = dyᵀ·x and dbias [N] = Σ_rows dy in one cuBLASLt call, for dy [M, N] and x [M, K], both
/// contiguous, on one CUDA device, one dtype of bf16/fp16/fp32 (dweight and dbias: the same dtype, contiguous).
/// Returns false, having written nothing, when cuBLASLt offers no algorithm for it (the caller then takes its
/// own path); a failed launch of an algorithm it offered is a JobError. On the current stream.
bool weight_and_bias_grad(const at::Tensor& dy, const at::Tensor& x, at::Tensor& dweight, at::Tensor& dbias);

}  // namespace deepspeed::ops::detail
