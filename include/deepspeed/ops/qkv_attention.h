#pragma once
/// \file
/// Multi-head self-attention over a packed QKV projection, `y = attention(q, k, v)` where `q, k, v` are the
/// three column thirds of `qkv` [B, T, 3C] split into `heads` heads — a transformer block's attention after its
/// fused QKV linear layer (flash-attn's "qkvpacked" form):
///
///   at::Tensor y = deepspeed::ops::qkv_attention(ops::linear(x, W_qkv, b_qkv), n_head, /*causal=*/true);
///
/// Why: LibTorch's SDPA backward allocates dq, dk and dv apart, so autograd joins them into the QKV layer's
/// output gradient with one more pass over 3·B·T·C values (GPT-2 1.5B on an H200: 2.2 ms of a 167 ms step, as
/// `linear_chunks`' joining pass). Here the backward is cuDNN's fused attention backward run through cuDNN's
/// graph API, told to write dq, dk and dv straight into the thirds of one [B, T, 3C] gradient, which is what the
/// QKV layer's backward reads. The forward is LibTorch's own cuDNN attention (the kernel
/// at::scaled_dot_product_attention runs on Hopper for GPT-2's shapes), on views of `qkv`, no copy; LibTorch
/// lays its output out token-major like q, so y [B, T, C] is a view of it. Measured (one H100, 2026-12-05): the
/// attention backward with c_attn's gradient 0.308 ms a layer at GPT-2 1.5B against 0.376 with the join; +0.5 %
/// a 1.5B step with the bias gradient in c_attn's weight GEMM (docs/kernels.md).
///
/// Numerics: y is bit for bit at::scaled_dot_product_attention's with the cuDNN backend (the same LibTorch call).
/// The gradient is cuDNN's backward, as LibTorch's cuDNN path computes it but for the engine cuDNN picks for the
/// strided outputs, so within bf16/fp16 rounding of it (the GPU test holds its error against float64 attention to
/// the LibTorch path's; on an H100 the two were equal to the printed digit, and at GPT-2 1.5B's shapes bitwise).
/// Like LibTorch's cuDNN backward (non-deterministic by default, LibTorch says: dq is summed across blocks in
/// fp32), it may differ in its last bits from run to run, unless
/// at::globalContext().deterministicAlgorithms() is on: in warn-only mode this path then builds cuDNN's
/// deterministic backward (LibTorch's own cuDNN path only warns); where determinism is required outright,
/// LibTorch reports its cuDNN attention unavailable, so the reference runs, on a backend LibTorch allows.
///
/// The fused path (qkv_attention_is_fused) takes bf16/fp16 CUDA tensors that LibTorch's cuDNN attention takes
/// (sdp::can_use_cudnn_attention: card, cuDNN version, head dim, and its at::globalContext() switch), no dropout,
/// a build with cuDNN's frontend headers, and no DS_REFERENCE_QKV_ATTENTION=1 (read at each call). It runs
/// cuDNN's kernels whatever ops::set_attention_backend chose. If cuDNN cannot build the backward graph for a
/// shape, the backward falls back to LibTorch's cuDNN backward and a copy into the one gradient (warned once).
/// Everywhere else the reference runs: `qkv.split` into heads, at::scaled_dot_product_attention (which follows
/// set_attention_backend and applies `dropout`), and the heads joined back into [B, T, C].

#include <cstdint>

#include <ATen/core/Tensor.h>

namespace deepspeed::ops {

/// qkv [B, T, 3C], C divisible by `heads`; returns y [B, T, C] (contiguous). One autograd node on the fused
/// path. `dropout` is the attention-weight dropout probability (applied by the reference path only; pass 0 in
/// evaluation). Throws UsageError for a qkv that is not 3-D or whose last dim is not 3·heads·head_dim.
at::Tensor qkv_attention(const at::Tensor& qkv, std::int64_t heads, bool causal, double dropout = 0.0);

/// True when DS_REFERENCE_QKV_ATTENTION=1 forces the reference (read at each call).
bool qkv_attention_reference_forced();

/// True when qkv_attention() takes the fused path for these arguments (see the file comment).
bool qkv_attention_is_fused(const at::Tensor& qkv, std::int64_t heads, double dropout = 0.0);

/// False only when DS_QKV_ATTENTION=0 asks a model not to run its attention through qkv_attention (read at each
/// call; the GPT-2 example's switch, on by default since 2026-12-05: its c_attn runs as ops::linear, whose bias
/// gradient comes from the weight GEMM, and qkv_attention; with =0, ops::linear_chunks and SDPA as before).
bool qkv_attention_requested();

}  // namespace deepspeed::ops
