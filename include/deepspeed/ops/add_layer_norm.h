#pragma once
/// \file
/// Residual add + LayerNorm, fused on CUDA: the pre-LayerNorm transformer block's `h = x + branch; z = ln(h)`.
///
/// Unfused, the add reads two activations and writes h, and the LayerNorm reads h again and writes y; backward
/// reads dy, h and weight for the LayerNorm's input gradient, a separate pass over dy and h for dweight/dbias,
/// and autograd adds that gradient to h's other gradient in one more elementwise pass. Fused, the forward
/// reads residual and branch once and writes h and y (the row stays in registers between the two), and the
/// backward reads dy, h and dh_out once and writes dh, with dweight/dbias summed on the way (docs/kernels.md).
///
/// Optionally the branch's bias too: a projection that writes into the residual stream (GPT-2's c_proj) can run
/// its GEMM without the bias and pass the bias here, so its gradient (a sum of d(branch) over all rows) is
/// summed in the pass that writes d(branch) instead of by a separate reduction over it.
///
/// Numerics (both paths): with a branch bias, b = branch + branch_bias is computed in fp32 (fp64 for fp64
/// inputs) and rounded to the inputs' dtype (the unbiased GEMM's output plus the bias, stored:
/// `at::linear(x, W, bias)` adds the bias before its one rounding, so the fold rounds once more than it);
/// without one, b = branch. h = residual + b is rounded to the inputs' dtype, exactly as `residual + b` stores
/// it, and the LayerNorm normalises that rounded h; statistics, x̂ and all gradients are computed in fp32 and
/// rounded once. The branch bias's gradient is the sum over all rows of d(branch) as returned (already rounded
/// to the inputs' dtype), in fp32 (fp64 for fp64 inputs), rounded once to the parameters' dtype.
///
/// The reference (any device, any dtype): ATen's native_layer_norm and native_layer_norm_backward inside the
/// same autograd function. It is also used when DS_REFERENCE_ADD_LAYER_NORM=1, so a run can be compared
/// against it.

#include <utility>

#include <ATen/core/Tensor.h>

namespace deepspeed::ops {

/// {h, y} with h = residual + branch (+ branch_bias, broadcast over the rows, when it is defined) and
/// y = LayerNorm(h) over the last dimension (biased variance, `eps` inside the square root) times `weight` plus
/// `bias`, as one autograd operation. An undefined branch_bias is exactly the operation without one.
///
/// Shapes: residual and branch [*, C] (the same shape), weight, bias and branch_bias [C]. dtypes: residual and
/// branch the same floating type; weight, bias and branch_bias the same type, either the inputs' type (a model
/// kept in bf16/fp16) or fp32. Non-contiguous arguments are copied. Backward: given the gradient of h from its
/// other uses (dh_out, may be absent) and dy, d(residual) = d(branch) = dh_out + LayerNorm's input gradient
/// (the same tensor for both), d(weight) = Σ dy·x̂ and d(bias) = Σ dy over all rows, d(branch_bias) =
/// Σ d(branch) over all rows, in the parameters' dtype.
///
/// Fused when every tensor is on one CUDA device, the inputs are bf16/fp16/fp32, 1 ≤ C ≤ 8192 and CUDA
/// support was built (add_layer_norm_is_fused); otherwise the reference. Throws UsageError for mismatched
/// shapes or dtypes.
std::pair<at::Tensor, at::Tensor> add_layer_norm(const at::Tensor& residual, const at::Tensor& branch,
                                                 const at::Tensor& weight, const at::Tensor& bias, double eps,
                                                 const at::Tensor& branch_bias = {});

/// The same operation on the reference path, on any device: ATen's LayerNorm kernels, in fp32 when the
/// parameters are fp32 and the inputs 16-bit; the branch bias added and its gradient summed by ATen ops.
std::pair<at::Tensor, at::Tensor> add_layer_norm_reference(const at::Tensor& residual, const at::Tensor& branch,
                                                           const at::Tensor& weight, const at::Tensor& bias,
                                                           double eps, const at::Tensor& branch_bias = {});

/// True when DS_REFERENCE_ADD_LAYER_NORM=1 forces the reference (read at each call).
bool add_layer_norm_reference_forced();

/// True when add_layer_norm() takes the CUDA kernels for these arguments.
bool add_layer_norm_is_fused(const at::Tensor& residual, const at::Tensor& branch, const at::Tensor& weight,
                             const at::Tensor& bias, const at::Tensor& branch_bias = {});

}  // namespace deepspeed::ops
