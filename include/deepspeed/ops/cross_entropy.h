#pragma once
/// \file
/// Cross-entropy for language-model heads, fused on CUDA.
///
/// The usual recipe (upcast the [tokens, vocab] logits to fp32, log_softmax, nll; and the same in reverse)
/// moves about 20 bytes per logit through memory; for GPT-2 124M at 32 × 1024 tokens that is ~60 GB and a
/// fifth of the step (docs/benchmarks.md). The fused kernel reads the 16-bit logits, computes each row's
/// log-sum-exp in fp32 and writes the gradient (softmax − one-hot) / rows in the logits' dtype in the same
/// launch: ~6 bytes per 16-bit logit forward. Backward costs nothing when the incoming gradient is 1 (the
/// kernel checks on the device, no host sync); any other factor (gradient accumulation's 1/gas, fp16's loss
/// scale) recomputes the gradient from the logits with the factor inside (~4 bytes per logit). Numerics: every
/// value is computed in fp32 and the gradient is rounded once to the logits' dtype, after the factor, so a
/// loss scale protects small fp16 gradients as it does through the reference. Rows of whole 16-byte packs take
/// e^x from the special-function unit's exp2 (a few fp32 units from expf; the loss ~1e-7 relative), which
/// keeps the kernel from being bound by instructions rather than memory.
///
/// The reference (any device, any dtype): at::cross_entropy_loss on the fp32 upcast. It is also used when
/// DS_REFERENCE_CROSS_ENTROPY=1, so a run can be compared against it.

#include <ATen/core/Tensor.h>

namespace deepspeed::ops {

/// Mean cross-entropy of `logits` [rows, vocab] against `targets` [rows] (int64 class indices), as a 0-dim fp32
/// tensor with autograd to `logits`. Fused when logits are a contiguous CUDA bf16/fp16/fp32 tensor built with
/// CUDA support; otherwise the reference. Fused: targets must lie in [0, vocab) (no ignore_index) — a row whose
/// target does not gives a NaN loss, so the fp16 overflow check skips the step; non-finite logits follow
/// ATen's log_softmax (−∞ drops out, a NaN or a +∞ logit makes its row's loss NaN) — and the graph can be
/// differentiated once (the gradient buffer computed in forward is handed to autograd). Without autograd
/// (under a no-grad guard, or logits that do not require grad) the reference runs: the kernel's gradient would
/// be wasted.
at::Tensor cross_entropy(const at::Tensor& logits, const at::Tensor& targets);

/// The reference: at::cross_entropy_loss(logits.to(fp32), targets).
at::Tensor cross_entropy_reference(const at::Tensor& logits, const at::Tensor& targets);

/// True when DS_REFERENCE_CROSS_ENTROPY=1 forces the reference (read at each call).
bool cross_entropy_reference_forced();

/// True when these arguments can take the fused kernel (cross_entropy() then uses it when autograd records).
bool cross_entropy_is_fused(const at::Tensor& logits, const at::Tensor& targets);

/// True when the fused forward keeps each row of these logits in shared memory between its two passes
/// (DS_CROSS_ENTROPY_STAGED=1, read at each call; 16-bit rows of up to 112 KB where the device grants that much,
/// as an H100/H200 does). The same results either way; the tests ask it to know which kernel ran.
bool cross_entropy_is_staged(const at::Tensor& logits, const at::Tensor& targets);

}  // namespace deepspeed::ops
