#pragma once
// Internal to ops::linear and ops::linear_chunks, built with DS_WITH_CUDA_OPS: the GEMMs of a linear layer's
// autograd node and where its bias gradient comes from, shared by the nodes with and without a bias and by the
// chunked layer, so all of them run one layer's GEMMs the same way.
#include <ATen/core/Tensor.h>
#include <torch/csrc/autograd/custom_function.h>

namespace deepspeed::ops::detail {

/// y = x·weightᵀ (+ bias), shaped [*, out]: unless DS_GEMM_TUNED=0 (read here, once for the layer's forward and
/// backward) the timed cuBLASLt GEMM where it is offered, else at::addmm / at::mm. Saves in `ctx` what
/// linear_node_backward reads. Call from an autograd Function's forward, on the input's device.
at::Tensor linear_node_forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                               const at::Tensor& bias);

/// {dx, dweight, dbias} of the node linear_node_forward saved (undefined where the input needs none). dy: the
/// output's gradient, any shape of the output's numel. with_bias: the node has a bias input. dbias_summed: the
/// bias gradient when the caller has already summed it (ops::linear_chunks does while it assembles dy); it is
/// returned as is and the weight GEMM then runs without summing dy. Otherwise the bias gradient comes from the
/// column-sum kernel, or from the weight GEMM's epilogue (timed GEMMs, or DS_LINEAR_EPILOGUE=1).
torch::autograd::variable_list linear_node_backward(torch::autograd::AutogradContext* ctx, const at::Tensor& dy,
                                                    bool with_bias, const at::Tensor& dbias_summed = at::Tensor());

}  // namespace deepspeed::ops::detail
