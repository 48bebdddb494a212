#include "deepspeed/ops/gelu_mlp.h"

#include <atomic>
#include <string>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "deepspeed/util/error.h"
#include "src/util/env.h"

#if defined(DS_WITH_CUDA_OPS) && defined(DS_WITH_CUBLASLT)
#define DS_GELU_MLP_EPILOGUE 1
#include <c10/cuda/CUDAGuard.h>

#include "src/ops/linear_gemms.h"
#endif

namespace deepspeed::ops {
namespace {

void check_arguments(const at::Tensor& x, const at::Tensor& w1, const at::Tensor& b1, const at::Tensor& w2,
                     const at::Tensor& b2) {
  const std::string what = "deepspeed::ops::gelu_mlp: ";
  if (!x.defined() || !w1.defined() || !b1.defined() || !w2.defined() || !b2.defined()) {
    throw UsageError(what + "x, both weights and both biases must be defined");
  }
  if (x.dim() < 1 || w1.dim() != 2 || w1.size(1) != x.size(-1)) {
    throw UsageError(what + "x must be [*, C] and fc_weight [F, C]");
  }
  if (b1.dim() != 1 || b1.size(0) != w1.size(0)) throw UsageError(what + "fc_bias must be [F]");
  if (w2.dim() != 2 || w2.size(1) != w1.size(0)) throw UsageError(what + "proj_weight must be [C', F]");
  if (b2.dim() != 1 || b2.size(0) != w2.size(0)) throw UsageError(what + "proj_bias must be [C']");
}

std::atomic<std::int64_t> epilogue_gemms{0};

#ifdef DS_GELU_MLP_EPILOGUE
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class GeluMlp : public torch::autograd::Function<GeluMlp> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w1, const at::Tensor& b1,
                            const at::Tensor& w2, const at::Tensor& b2) {
    const c10::cuda::CUDAGuard guard(x.device());
    const auto choice = detail::tuned_gemm_choice();
    const at::Tensor x2 = x.reshape({-1, x.size(-1)}).contiguous();
    const std::int64_t rows = x2.size(0), width = w1.size(0);
    at::Tensor gelu_in = at::empty({rows, width}, x2.options());
    at::Tensor gelu_out = at::empty({rows, width}, x2.options());
    if (rows > 0 && detail::lt_matmul(detail::gelu_forward_problem(x2, w1, b1, gelu_out, gelu_in), choice)) {
      epilogue_gemms.fetch_add(1, std::memory_order_relaxed);
    } else {  // cuBLASLt offers no algorithm with this epilogue here: the same values, unfused
      at::addmm_out(gelu_in, b1, x2, w1.t());
      gelu_out = at::gelu(gelu_in, "tanh");
    }
    // Allocated in its final shape: a view returned from a custom function could not be modified in place.
    auto out_shape = x.sizes().vec();
    out_shape.back() = w2.size(0);
    at::Tensor y = at::empty(out_shape, x2.options());
    at::Tensor y2 = y.view({rows, w2.size(0)});
    if (!(rows > 0 && detail::linear_forward(gelu_out, w2, b2, y2, choice))) at::addmm_out(y2, b2, gelu_out, w2.t());
    ctx->save_for_backward({x2, w1, w2, gelu_in, gelu_out});
    ctx->saved_data["shape"] = x.sizes().vec();
    ctx->saved_data["choice"] = static_cast<std::int64_t>(choice);
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x2 = saved[0], &w1 = saved[1], &w2 = saved[2], &gelu_in = saved[3], &gelu_out = saved[4];
    const c10::cuda::CUDAGuard guard(x2.device());
    const auto choice = static_cast<detail::LtChoice>(ctx->saved_data["choice"].toInt());
    const at::Tensor dy = grad_outputs[0].reshape({-1, w2.size(0)}).contiguous();
    const bool has_rows = dy.size(0) > 0;
    at::Tensor dx, dw1, db1, dw2, db2;
    // The second layer's parameter gradients: one GEMM, its bias gradient summed in the epilogue.
    if (ctx->needs_input_grad(3) || ctx->needs_input_grad(4)) {
      dw2 = at::empty(w2.sizes(), dy.options());
      db2 = at::empty({w2.size(0)}, dy.options());
      if (!(has_rows && detail::weight_and_bias_grad(dy, gelu_out, dw2, db2, choice))) {
        dw2 = dy.t().mm(gelu_out);
        db2 = dy.sum(0);
      }
    }
    if (ctx->needs_input_grad(0) || ctx->needs_input_grad(1) || ctx->needs_input_grad(2)) {
      // GELU's input gradient from the second layer's input-gradient GEMM (DGELU epilogue). The first bias's
      // gradient is summed by the first layer's weight GEMM (BGRADB), which reads that gradient anyway: with
      // DGELU_BGRAD cuBLASLt sums it in a separate, slow kernel (the call 3.6× the plain GEMM's time at GPT-2
      // 1.5B's width, H100 2026-12-05, gemm_bench).
      at::Tensor d_in = at::empty(gelu_in.sizes(), dy.options()), none;
      if (has_rows && detail::lt_matmul(detail::dgelu_input_grad_problem(dy, w2, gelu_in, d_in, none), choice)) {
        epilogue_gemms.fetch_add(1, std::memory_order_relaxed);
      } else {
        d_in = at::gelu_backward(dy.mm(w2), gelu_in, "tanh");
      }
      if (ctx->needs_input_grad(1)) {
        dw1 = at::empty(w1.sizes(), dy.options());
        if (ctx->needs_input_grad(2)) db1 = at::empty({w1.size(0)}, dy.options());
        if (!(has_rows && detail::weight_and_bias_grad(d_in, x2, dw1, db1, choice))) {
          dw1 = d_in.t().mm(x2);
          if (db1.defined()) db1 = d_in.sum(0);
        }
      } else if (ctx->needs_input_grad(2)) {
        db1 = d_in.sum(0);
      }
      if (ctx->needs_input_grad(0)) {
        dx = at::empty({d_in.size(0), w1.size(1)}, dy.options());
        if (!(has_rows && detail::linear_input_grad(d_in, w1, dx, choice))) dx = d_in.mm(w1);
        dx = dx.view(ctx->saved_data["shape"].toIntVector());
      }
    }
    return {dx, dw1, db1, dw2, db2};
  }
};
#endif

}  // namespace

bool gelu_mlp_epilogue_requested() { return util::env_is("DS_MLP_EPILOGUE"); }

std::int64_t gelu_mlp_epilogue_gemms() { return epilogue_gemms.load(std::memory_order_relaxed); }

bool gelu_mlp_is_fused(const at::Tensor& x, const at::Tensor& w1, const at::Tensor& b1, const at::Tensor& w2,
                       const at::Tensor& b2) {
#ifdef DS_GELU_MLP_EPILOGUE
  if (!gelu_mlp_epilogue_requested() || !x.defined() || !x.is_cuda() || x.dim() < 1) return false;
  const auto t = x.scalar_type();
  if (t != at::kBFloat16 && t != at::kHalf) return false;
  for (const at::Tensor* p : {&w1, &b1, &w2, &b2}) {
    if (!p->defined() || p->device() != x.device() || p->scalar_type() != t || !p->is_contiguous()) return false;
  }
  // cuBLASLt's GELU input matrix needs a leading dimension divisible by 8; 16-byte rows keep every operand aligned.
  if (w1.dim() != 2 || w2.dim() != 2 || x.size(-1) == 0 || w1.size(0) == 0 || w2.size(0) == 0) return false;
  return x.size(-1) % 8 == 0 && w1.size(0) % 8 == 0 && w2.size(0) % 8 == 0;
#else
  (void)x, (void)w1, (void)b1, (void)w2, (void)b2;
  return false;
#endif
}

at::Tensor gelu_mlp_reference(const at::Tensor& x, const at::Tensor& w1, const at::Tensor& b1, const at::Tensor& w2,
                              const at::Tensor& b2) {
  check_arguments(x, w1, b1, w2, b2);
  return at::linear(at::gelu(at::linear(x, w1, b1), "tanh"), w2, b2);
}

at::Tensor gelu_mlp(const at::Tensor& x, const at::Tensor& w1, const at::Tensor& b1, const at::Tensor& w2,
                    const at::Tensor& b2) {
  check_arguments(x, w1, b1, w2, b2);
#ifdef DS_GELU_MLP_EPILOGUE
  if (gelu_mlp_is_fused(x, w1, b1, w2, b2)) return GeluMlp::apply(x, w1, b1, w2, b2);
#endif
  return gelu_mlp_reference(x, w1, b1, w2, b2);
}

}  // namespace deepspeed::ops
