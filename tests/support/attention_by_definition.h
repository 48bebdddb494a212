#pragma once
// Attention written out, head by head, in float64: what the qkv_attention tests hold both of its paths to.
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include <ATen/ATen.h>

namespace deepspeed::testing {

/// qkv [B, T, 3C] (any dtype, any device) → softmax(q·kᵀ/√d + mask)·v per head, [B, T, C] in float64; with
/// `causal` a token sees itself and the tokens before it.
inline at::Tensor attention_by_definition(const at::Tensor& qkv, std::int64_t heads, bool causal) {
  const std::int64_t b = qkv.size(0), t = qkv.size(1), c = qkv.size(2) / 3, d = c / heads;
  const at::Tensor x = qkv.to(at::kDouble);
  std::vector<at::Tensor> outputs;
  for (std::int64_t h = 0; h < heads; ++h) {
    const at::Tensor q = x.narrow(2, h * d, d), k = x.narrow(2, c + h * d, d), v = x.narrow(2, 2 * c + h * d, d);
    at::Tensor scores = at::matmul(q, k.transpose(1, 2)) / std::sqrt(static_cast<double>(d));  // [B, T, T]
    if (causal) {
      const at::Tensor future = at::ones({t, t}, x.options().dtype(at::kBool)).triu(1);
      scores = scores.masked_fill(future, -std::numeric_limits<double>::infinity());
    }
    outputs.push_back(at::matmul(at::softmax(scores, -1), v));
  }
  return at::cat(outputs, -1).view({b, t, c});
}

}  // namespace deepspeed::testing
