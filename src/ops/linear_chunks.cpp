#include "deepspeed/ops/linear_chunks.h"

#include <string>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "deepspeed/ops/linear.h"
#include "deepspeed/util/error.h"
#include "src/ops/linear_arguments.h"
#include "src/util/env.h"

#ifdef DS_WITH_CUDA_OPS
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "src/ops/bias_gelu_kernel.h"
#include "src/ops/launch_support.h"
#include "src/ops/linear_chunks_kernel.h"
#include "src/ops/linear_node.h"
#endif

namespace deepspeed::ops {
namespace {

// The fused path's limit (the kernel's table of chunk pointers); the reference takes any count.
constexpr std::int64_t kMaxChunks = 8;
#ifdef DS_WITH_CUDA_OPS
static_assert(kMaxChunks == detail::kMaxLinearChunks);
#endif

void check_arguments(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, std::int64_t chunks) {
  detail::check_linear_arguments("linear_chunks", x, weight, bias);
  if (chunks < 1 || weight.size(0) % chunks != 0) {
    throw UsageError("deepspeed::ops::linear_chunks: chunks must be a positive divisor of out (" +
                     std::to_string(weight.size(0)) + "), got " + std::to_string(chunks));
  }
}

#ifdef DS_WITH_CUDA_OPS
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class LinearChunks : public torch::autograd::Function<LinearChunks> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                               const at::Tensor& bias, std::int64_t chunks) {
    return detail::linear_node_forward(ctx, x, weight, bias).chunk(chunks, -1);
  }

  // grads: one per chunk, zeros where a chunk got none (the node materializes them).
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const c10::cuda::CUDAGuard guard(grads[0].device());
    const auto chunks = static_cast<int>(grads.size());
    const std::int64_t width = grads[0].size(-1), columns = chunks * width;
    const std::int64_t rows = grads[0].numel() / width;
    std::vector<at::Tensor> parts_in(grads.size());
    std::vector<const void*> pointers(grads.size());
    for (std::size_t c = 0; c < grads.size(); ++c) {
      parts_in[c] = grads[c].reshape({rows, width}).contiguous();
      pointers[c] = parts_in[c].data_ptr();
    }
    const at::Tensor& first = parts_in[0];
    at::Tensor dy = at::empty({rows, columns}, first.options());
    at::Tensor dbias = at::empty({columns}, first.options());
    const std::int64_t parts = detail::bias_gelu_backward_parts(rows, columns);
    at::Tensor workspace = at::empty({parts, columns}, first.options().dtype(at::kFloat));  // freed in stream order
    const auto type = detail::element_type(first.scalar_type());
    detail::check_launch(detail::launch_linear_chunks_backward(type, type, pointers.data(), chunks, rows, width,
                                                               dy.data_ptr(), dbias.data_ptr(),
                                                               workspace.data_ptr<float>(), parts,
                                                               c10::cuda::getCurrentCUDAStream().stream()),
                         "linear_chunks");
    variable_list out = detail::linear_node_backward(ctx, dy, /*with_bias=*/true, dbias);
    out.emplace_back();  // chunks
    return out;
  }
};
#endif

}  // namespace

bool linear_chunks_reference_forced() { return util::env_is("DS_REFERENCE_LINEAR_CHUNKS"); }

bool linear_chunks_is_fused(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                            std::int64_t chunks) {
  return !linear_chunks_reference_forced() && x.defined() && weight.defined() && weight.dim() == 2 &&
         weight.size(0) > 0 && chunks >= 1 && chunks <= kMaxChunks && weight.size(0) % chunks == 0 &&
         linear_is_fused(x, weight, bias);
}

std::vector<at::Tensor> linear_chunks(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                                      std::int64_t chunks) {
  check_arguments(x, weight, bias, chunks);
#ifdef DS_WITH_CUDA_OPS
  if (linear_chunks_is_fused(x, weight, bias, chunks)) return LinearChunks::apply(x, weight, bias, chunks);
#endif
  return at::linear(x, weight, bias).chunk(chunks, -1);
}

}  // namespace deepspeed::ops
