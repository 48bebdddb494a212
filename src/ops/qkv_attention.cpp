#include "deepspeed/ops/qkv_attention.h"

#include <atomic>
#include <cmath>
#include <string>
#include <vector>

#include <ATen/Context.h>
#include <ATen/ops/scaled_dot_product_attention.h>

#include "deepspeed/util/error.h"
#include "deepspeed/util/strings.h"
#include "src/util/env.h"

#if defined(DS_WITH_CUDA_OPS) && defined(DS_WITH_CUDNN_FRONTEND)
#define DS_QKV_ATTENTION_FUSED
#include <ATen/native/transformers/cuda/sdp_utils.h>
#include <ATen/ops/_scaled_dot_product_cudnn_attention.h>
#include <ATen/ops/_scaled_dot_product_cudnn_attention_backward.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/csrc/autograd/custom_function.h>

#include "deepspeed/util/logging.h"
#include "src/ops/cudnn_sdpa.h"
#endif

namespace deepspeed::ops {
namespace {

void check_arguments(const at::Tensor& qkv, std::int64_t heads) {
  if (!qkv.defined() || qkv.dim() != 3) {
    throw UsageError(util::cat("deepspeed::ops::qkv_attention: qkv must be [B, T, 3C], got ",
                               qkv.defined() ? qkv.dim() : 0, " dims"));
  }
  if (heads < 1 || qkv.size(2) % (3 * heads) != 0) {
    throw UsageError(util::cat("deepspeed::ops::qkv_attention: qkv's last dim (", qkv.size(2),
                               ") must be 3 · heads · head_dim for heads = ", heads));
  }
}

struct Heads {
  at::Tensor q, k, v;  // [B, H, T, D] views of one [B, T, 3C] tensor
};

Heads split_heads(const at::Tensor& qkv, std::int64_t heads) {
  const std::int64_t b = qkv.size(0), t = qkv.size(1), c = qkv.size(2) / 3;
  const std::vector<at::Tensor> parts = qkv.split(c, -1);
  auto view = [&](const at::Tensor& z) { return z.view({b, t, heads, c / heads}).transpose(1, 2); };
  return {view(parts[0]), view(parts[1]), view(parts[2])};
}

// [B, H, T, D] → [B, T, H·D]: a view where the heads are already laid out token-major.
at::Tensor join_heads(const at::Tensor& y) {
  return y.transpose(1, 2).contiguous().view({y.size(0), y.size(2), y.size(1) * y.size(3)});
}

at::Tensor reference(const at::Tensor& qkv, std::int64_t heads, bool causal, double dropout) {
  const Heads h = split_heads(qkv, heads);
  return join_heads(at::scaled_dot_product_attention(h.q, h.k, h.v, /*attn_mask=*/{}, dropout, causal));
}

#ifdef DS_QKV_ATTENTION_FUSED
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// LibTorch's softmax scale for SDPA without an explicit one, rounded to float as its cuDNN path passes it.
float default_scale(std::int64_t head_dim) {
  return static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim)));
}

class QkvAttention : public torch::autograd::Function<QkvAttention> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& qkv, std::int64_t heads, bool causal) {
    const at::Tensor packed = qkv.contiguous();
    const Heads h = split_heads(packed, heads);
    // (output, logsumexp, cum_seq_q, cum_seq_k, max_q, max_k, philox_seed, philox_offset, debug_attn_mask)
    auto result = at::_scaled_dot_product_cudnn_attention(h.q, h.k, h.v, /*attn_bias=*/std::nullopt,
                                                          /*compute_log_sumexp=*/true, /*dropout_p=*/0.0, causal,
                                                          /*return_debug_mask=*/false);
    const at::Tensor& o = std::get<0>(result);
    ctx->save_for_backward({packed, o, std::get<1>(result), std::get<6>(result), std::get<7>(result)});
    ctx->saved_data["heads"] = heads;
    ctx->saved_data["causal"] = causal;
    return join_heads(o);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &packed = saved[0], &o = saved[1], &stats = saved[2];
    const std::int64_t heads = ctx->saved_data["heads"].toInt();
    const bool causal = ctx->saved_data["causal"].toBool();
    const c10::cuda::CUDAGuard guard(packed.device());
    const Heads in = split_heads(packed, heads);
    const std::int64_t b = packed.size(0), t = packed.size(1), d = in.q.size(3);

    // cuDNN reads the output gradient at the output's strides.
    at::Tensor d_o = grads[0].contiguous().view({b, t, heads, d}).transpose(1, 2);
    if (d_o.strides() != o.strides()) d_o = at::empty_like(o).copy_(d_o);

    at::Tensor d_qkv = at::empty_like(packed);  // the QKV layer's output gradient, written by the three thirds
    Heads out = split_heads(d_qkv, heads);
    detail::SdpaBackwardArgs args{in.q, in.k, in.v, o, d_o, stats, out.q, out.k, out.v, default_scale(d), causal,
                                  at::globalContext().deterministicAlgorithms()};
    std::string why;
    if (!detail::cudnn_sdpa_backward(args, why)) {
      static std::atomic<bool> warned{false};  // backward may run on several devices' threads
      if (!warned.exchange(true)) {
        DS_LOG(kWarning, "deepspeed::ops::qkv_attention: cuDNN's graph for the backward was not built (", why,
               "); using LibTorch's cuDNN backward and a copy for these shapes");
      }
      auto [g_q, g_k, g_v] = at::_scaled_dot_product_cudnn_attention_backward(
          d_o, in.q, in.k, in.v, o, stats, saved[3], saved[4], /*attn_bias=*/at::Tensor(), /*cum_seq_q=*/at::Tensor(),
          /*cum_seq_k=*/at::Tensor(), /*max_q=*/t, /*max_k=*/t, /*dropout_p=*/0.0, causal);
      out.q.copy_(g_q);
      out.k.copy_(g_k);
      out.v.copy_(g_v);
    }
    return {d_qkv, at::Tensor(), at::Tensor()};
  }
};
#endif

}  // namespace

bool qkv_attention_reference_forced() { return util::env_is("DS_REFERENCE_QKV_ATTENTION"); }

bool qkv_attention_requested() { return !util::env_is("DS_QKV_ATTENTION", "0"); }

bool qkv_attention_is_fused(const at::Tensor& qkv, std::int64_t heads, double dropout) {
#ifdef DS_QKV_ATTENTION_FUSED
  if (qkv_attention_reference_forced() || dropout != 0.0 || !qkv.defined() || !qkv.is_cuda() || qkv.dim() != 3 ||
      heads < 1 || qkv.size(2) % (3 * heads) != 0 || qkv.numel() == 0) {
    return false;
  }
  const bool half = qkv.scalar_type() == at::kBFloat16 || qkv.scalar_type() == at::kHalf;
  if (!half || qkv.stride(-1) != 1) return false;
  if (!detail::cudnn_sdpa_available()) return false;
  // LibTorch's own test of its cuDNN attention for these views (card, cuDNN version, head dim, lengths, and the
  // user's at::globalContext() switch for it), so the forward below never meets a shape it refuses.
  const Heads h = split_heads(qkv, heads);
  return sdp::can_use_cudnn_attention(sdp::sdp_params{h.q, h.k, h.v, std::nullopt, 0.0, /*is_causal=*/false,
                                                      /*enable_gqa=*/false},
                                      /*debug=*/false);
#else
  (void)qkv, (void)heads, (void)dropout;
  return false;
#endif
}

at::Tensor qkv_attention(const at::Tensor& qkv, std::int64_t heads, bool causal, double dropout) {
  check_arguments(qkv, heads);
#ifdef DS_QKV_ATTENTION_FUSED
  if (qkv_attention_is_fused(qkv, heads, dropout)) return QkvAttention::apply(qkv, heads, causal);
#endif
  return reference(qkv, heads, causal, dropout);
}

}  // namespace deepspeed::ops
