#pragma once
/// \file
/// A linear layer whose output is used in equal column chunks — a transformer's fused QKV projection:
/// `q, k, v = linear_chunks(x, W_qkv, b_qkv, 3)`, as `at::linear(x, W, b).chunk(3, -1)`.
///
/// Why: under autograd the chunks' gradients come back as separate tensors (SDPA's backward allocates dq, dk and
/// dv), so `.chunk`/`.split` backward concatenates them into the layer's output gradient, and the layer's
/// backward then reads that once more for the bias gradient. The fused path does both in one pass (chunk
/// gradients in, output gradient out, column sums on the way), then runs the layer's two GEMMs as ops::linear
/// does. GPT-2 1.5B on an H200: the concatenation alone was 1.92 ms of a 167 ms step; on an H100 the fused pass
/// took 0.071 ms a layer where the cat and the bias gradient's sum took 0.097 (docs/kernels.md).
///
/// Numerics: y and the chunks are ops::linear's output bit for bit; dx and dW are its GEMMs of the same output
/// gradient (the concatenation is a copy); the bias gradient is Σ_rows of that gradient in fp32, rounded once,
/// in the order of ops::linear's column-sum kernel (bit for bit its result for the concatenated gradient).
///
/// The outputs are views of one [*, out] tensor made inside the node: modifying one in place is an error, as
/// for the outputs of any custom autograd function that are views.
///
/// The reference, `at::linear(x, weight, bias).chunk(chunks, -1)`, runs wherever ops::linear would not take its
/// kernels (linear_is_fused: CPU tensors, other dtypes, no bias, DS_REFERENCE_LINEAR=1), for more than 8 chunks,
/// and whenever DS_REFERENCE_LINEAR_CHUNKS=1 (read at each call).

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

namespace deepspeed::ops {

/// x [*, in], weight [out, in], bias [out]; chunks ≥ 1 dividing out (at most 8 on the fused path). Returns the
/// chunks of y [*, out] in order, each [*, out / chunks]. One autograd node for the layer and its chunks.
/// Throws UsageError for mismatched shapes or a chunk count that does not divide out.
std::vector<at::Tensor> linear_chunks(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                                      std::int64_t chunks);

/// True when DS_REFERENCE_LINEAR_CHUNKS=1 forces the reference (read at each call).
bool linear_chunks_reference_forced();

/// True when linear_chunks() takes the fused backward for these arguments: not forced to the reference,
/// ops::linear's kernel conditions (linear_is_fused: a bias, one CUDA device, bf16/fp16/fp32, CUDA support
/// built, no DS_REFERENCE_LINEAR=1), and 1 ≤ chunks ≤ 8 dividing out.
bool linear_chunks_is_fused(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                            std::int64_t chunks);

}  // namespace deepspeed::ops
