// DeepSpeed's MAC/FLOP estimates (deepspeed/profiling/flops_profiler/profiler.py), written against ATen's
// operator schemas. DeepSpeed patches torch.nn.functional and a few torch/Tensor methods; here the same
// estimates hang off the aten operators those functions dispatch to, with the argument positions of the aten
// schema (which differ from the Python signatures, e.g. aten::batch_norm puts weight before running_mean).
#include "src/profiling/flop_formulas.h"

#include <algorithm>
#include <string>
#include <unordered_map>
#include <vector>

#include <ATen/core/Tensor.h>

namespace deepspeed::profiling::detail {
namespace {

using Args = c10::ArrayRef<const c10::IValue>;
using Result = std::optional<OpCount>;
using Formula = Result (*)(Args);

const at::Tensor* tensor_at(Args a, std::size_t i) {
  if (i >= a.size() || !a[i].isTensor()) return nullptr;
  const at::Tensor& t = a[i].toTensor();
  return t.defined() ? &t : nullptr;
}

// An int[] argument; a single int (or a one-element list) stands for `n` copies, as ATen's schemas allow.
std::optional<std::vector<std::int64_t>> int_list(Args a, std::size_t i, std::size_t n) {
  if (i >= a.size()) return std::nullopt;
  const c10::IValue& v = a[i];
  std::vector<std::int64_t> out;
  if (v.isIntList()) {
    out = v.toIntVector();
  } else if (v.isSymIntList()) {
    for (const c10::SymInt& s : v.toSymIntVector()) out.push_back(s.guard_int(__FILE__, __LINE__));
  } else if (v.isInt() || v.isSymInt()) {
    out.push_back(v.toInt());
  } else {
    return std::nullopt;
  }
  if (out.size() == 1 && n > 1) out.assign(n, out[0]);
  if (out.size() != n) return std::nullopt;
  return out;
}

std::optional<std::int64_t> int_at(Args a, std::size_t i) {
  if (i >= a.size() || !(a[i].isInt() || a[i].isSymInt())) return std::nullopt;
  return a[i].toInt();
}

std::int64_t prod(c10::IntArrayRef dims) {
  std::int64_t p = 1;
  for (auto d : dims) p *= d;
  return p;
}

// ---- formulas (numbers in DeepSpeed's order: MACs then FLOPs in OpCount) ----

// F.linear: out_features × every input element; the bias is not counted.
Result linear(Args a) {
  auto in = tensor_at(a, 0), w = tensor_at(a, 1);
  if (!in || !w || w->dim() < 1) return std::nullopt;
  const std::int64_t macs = in->numel() * w->size(0);
  return OpCount{macs, 2 * macs};
}

// torch.matmul / mm / bmm: every element of the first operand meets the last dimension of the second.
Result matmul(Args a) {
  auto x = tensor_at(a, 0), y = tensor_at(a, 1);
  if (!x || !y || y->dim() < 1) return std::nullopt;
  const std::int64_t macs = x->numel() * y->size(-1);
  return OpCount{macs, 2 * macs};
}

// addmm / baddbmm (self, mat1, mat2): the product plus one add per element of `self`.
Result addmm(Args a) {
  auto self = tensor_at(a, 0), m1 = tensor_at(a, 1), m2 = tensor_at(a, 2);
  if (!self || !m1 || !m2 || m2->dim() < 1) return std::nullopt;
  const std::int64_t macs = m1->numel() * m2->size(-1);
  return OpCount{macs, 2 * macs + self->numel()};
}

// One flop per element of the first argument: activations, pooling, softmax.
Result per_input_element(Args a) {
  auto in = tensor_at(a, 0);
  if (!in) return std::nullopt;
  return OpCount{0, in->numel()};
}

Result zero(Args) { return OpCount{0, 0}; }

// torch.add / torch.mul: one flop per element of the broadcast result (a scalar operand broadcasts).
Result elementwise(Args a) {
  auto x = tensor_at(a, 0), y = tensor_at(a, 1);
  if (!x && !y) return OpCount{0, 1};
  if (!x || !y) return OpCount{0, (x ? x : y)->numel()};
  // Broadcast from the trailing dimension, as PyTorch does (DeepSpeed aligns leading dimensions instead; the
  // two agree whenever the ranks are equal).
  const auto xs = x->sizes(), ys = y->sizes();
  const std::size_t rank = std::max(xs.size(), ys.size());
  std::int64_t n = 1;
  for (std::size_t i = 0; i < rank; ++i) {
    const std::int64_t dx = i < xs.size() ? xs[xs.size() - 1 - i] : 1;
    const std::int64_t dy = i < ys.size() ? ys[ys.size() - 1 - i] : 1;
    n *= std::max(dx, dy);
  }
  return OpCount{0, n};
}

// Normalisations: DeepSpeed's estimate of 4 flops per element, 5 with an affine transform.
Result norm_affine_at(Args a, std::size_t weight_index) {
  auto in = tensor_at(a, 0);
  if (!in) return std::nullopt;
  return OpCount{0, in->numel() * (tensor_at(a, weight_index) ? 5 : 4)};
}
Result layer_norm(Args a) { return norm_affine_at(a, 2); }     // (input, normalized_shape, weight, bias, ...)
Result group_norm(Args a) { return norm_affine_at(a, 2); }     // (input, num_groups, weight, bias, ...)
Result instance_norm(Args a) { return norm_affine_at(a, 1); }  // (input, weight, bias, running_mean, ...)
Result native_group_norm(Args a) { return norm_affine_at(a, 1); }  // (input, weight, bias, N, C, HxW, ...)

// (input, weight, bias, running_mean, running_var, training, ...): training as the other norms; in eval one
// flop per element, two with affine.
Result batch_norm(Args a) {
  auto in = tensor_at(a, 0);
  if (!in || a.size() < 6 || !a[5].isBool()) return std::nullopt;
  const bool affine = tensor_at(a, 1) != nullptr;
  if (a[5].toBool()) return OpCount{0, in->numel() * (affine ? 5 : 4)};
  return OpCount{0, in->numel() * (affine ? 2 : 1)};
}

// Convolution: kernel volume × in_channels × out_channels/groups MACs per output position; the bias adds one
// flop per output element.
Result conv_core(const at::Tensor& in, const at::Tensor& w, bool has_bias, Args a, std::size_t stride_i,
                 std::size_t padding_i, std::size_t dilation_i, std::int64_t groups) {
  const std::size_t spatial = w.dim() - 2;
  const bool batched = in.dim() == w.dim();
  if (w.dim() < 3 || (!batched && in.dim() + 1 != w.dim()) || groups <= 0) return std::nullopt;
  const std::int64_t batch = batched ? in.size(0) : 1;
  const std::int64_t in_channels = in.size(batched ? 1 : 0);
  const auto input_dims = in.sizes().slice(batched ? 2 : 1);
  const auto kernel_dims = w.sizes().slice(2);
  auto strides = int_list(a, stride_i, spatial), dilations = int_list(a, dilation_i, spatial);
  if (!strides || !dilations) return std::nullopt;
  std::vector<std::int64_t> paddings;
  if (padding_i < a.size() && a[padding_i].isString()) {
    const std::string_view mode = a[padding_i].toStringView();
    for (std::size_t d = 0; d < spatial; ++d) {
      paddings.push_back(mode == "same" ? (*dilations)[d] * (kernel_dims[d] - 1) / 2 : 0);
    }
  } else {
    auto p = int_list(a, padding_i, spatial);
    if (!p) return std::nullopt;
    paddings = *p;
  }
  std::int64_t output_positions = 1;
  for (std::size_t d = 0; d < spatial; ++d) {
    const std::int64_t extent = (*dilations)[d] * (kernel_dims[d] - 1) + 1;
    output_positions *= (input_dims[d] + 2 * paddings[d] - extent) / (*strides)[d] + 1;
  }
  const std::int64_t out_channels = w.size(0);
  const std::int64_t active = batch * output_positions;
  const std::int64_t macs = prod(kernel_dims) * in_channels * (out_channels / groups) * active;
  return OpCount{macs, 2 * macs + (has_bias ? out_channels * active : 0)};
}

// Transposed convolution, DeepSpeed's estimate as written: MACs per *input* position, out_channels read from
// weight.size(1) (already per group) and divided by groups again; the bias term uses the forward-convolution
// output size.
Result conv_transpose_core(const at::Tensor& in, const at::Tensor& w, bool has_bias, Args a, std::size_t stride_i,
                           std::size_t padding_i, std::size_t dilation_i, std::int64_t groups) {
  const std::size_t spatial = w.dim() - 2;
  if (w.dim() < 3 || in.dim() != w.dim() || groups <= 0) return std::nullopt;
  auto strides = int_list(a, stride_i, spatial), paddings = int_list(a, padding_i, spatial),
       dilations = int_list(a, dilation_i, spatial);
  if (!strides || !paddings || !dilations) return std::nullopt;
  const std::int64_t batch = in.size(0), in_channels = in.size(1), out_channels = w.size(1);
  const auto input_dims = in.sizes().slice(2);
  const auto kernel_dims = w.sizes().slice(2);
  std::int64_t output_positions = 1;
  for (std::size_t d = 0; d < spatial; ++d) {
    const std::int64_t extent = (*dilations)[d] * (kernel_dims[d] - 1) + 1;
    output_positions *= (input_dims[d] + 2 * (*paddings)[d] - extent) / (*strides)[d] + 1;
  }
  const std::int64_t macs = prod(kernel_dims) * in_channels * (out_channels / groups) * batch * prod(input_dims);
  return OpCount{macs, 2 * macs + (has_bias ? out_channels * batch * output_positions : 0)};
}

// aten::conv{1,2,3}d(input, weight, bias, stride, padding, dilation, groups); padding may be "same"/"valid".
Result conv(Args a) {
  auto in = tensor_at(a, 0), w = tensor_at(a, 1);
  auto groups = int_at(a, 6);
  if (!in || !w || !groups) return std::nullopt;
  return conv_core(*in, *w, tensor_at(a, 2) != nullptr, a, 3, 4, 5, *groups);
}

// aten::conv_transpose{1,2,3}d(input, weight, bias, stride, padding, output_padding, groups, dilation).
Result conv_transpose(Args a) {
  auto in = tensor_at(a, 0), w = tensor_at(a, 1);
  auto groups = int_at(a, 6);
  if (!in || !w || !groups) return std::nullopt;
  return conv_transpose_core(*in, *w, tensor_at(a, 2) != nullptr, a, 3, 4, 7, *groups);
}

// aten::convolution / _convolution(input, weight, bias, stride, padding, dilation, transposed,
// output_padding, groups, ...): reached directly only when called without the conv{N}d front end.
Result convolution(Args a) {
  auto in = tensor_at(a, 0), w = tensor_at(a, 1);
  auto groups = int_at(a, 8);
  if (!in || !w || !groups || a.size() < 7 || !a[6].isBool()) return std::nullopt;
  const bool has_bias = tensor_at(a, 2) != nullptr;
  return a[6].toBool() ? conv_transpose_core(*in, *w, has_bias, a, 3, 4, 5, *groups)
                       : conv_core(*in, *w, has_bias, a, 3, 4, 5, *groups);
}

// F.scaled_dot_product_attention(q, k, v, ...): Q·Kᵀ plus attention·V.
Result attention(Args a) {
  auto q = tensor_at(a, 0), k = tensor_at(a, 1), v = tensor_at(a, 2);
  if (!q || !k || !v || q->dim() < 1 || k->dim() < 2 || v->dim() < 1) return std::nullopt;
  std::int64_t macs = q->numel() * k->size(-2);
  macs += prod(q->sizes().slice(0, q->dim() - 1)) * k->size(-2) * v->size(-1);
  return OpCount{macs, 2 * macs};
}

// F.interpolate: with an output size, its product (spatial dimensions only, as DeepSpeed counts); with scale
// factors, the input elements times their product.
Result upsample(Args a) {
  auto in = tensor_at(a, 0);
  if (!in || in->dim() < 3) return std::nullopt;
  const std::size_t spatial = in->dim() - 2;
  if (auto size = int_list(a, 1, spatial)) return OpCount{0, prod(*size)};
  if (a.size() > 2 && a[2].isDoubleList()) {
    double flops = static_cast<double>(in->numel());
    for (double s : a[2].toDoubleVector()) flops *= s;
    return OpCount{0, static_cast<std::int64_t>(flops)};
  }
  return std::nullopt;
}

const std::unordered_map<std::string_view, Formula>& formulas() {
  static const std::unordered_map<std::string_view, Formula> table = [] {
    std::unordered_map<std::string_view, Formula> t;
    t["aten::linear"] = linear;
    for (auto n : {"aten::matmul", "aten::mm", "aten::bmm"}) t[n] = matmul;
    for (auto n : {"aten::addmm", "aten::baddbmm"}) t[n] = addmm;
    for (auto n : {"aten::conv1d", "aten::conv2d", "aten::conv3d"}) t[n] = conv;
    for (auto n : {"aten::conv_transpose1d", "aten::conv_transpose2d", "aten::conv_transpose3d"}) {
      t[n] = conv_transpose;
    }
    for (auto n : {"aten::convolution", "aten::_convolution"}) t[n] = convolution;
    // F.relu/prelu/elu/leaky_relu/relu6/silu/gelu, in place or not.
    for (auto n : {"aten::relu", "aten::relu_", "aten::prelu", "aten::elu", "aten::elu_", "aten::leaky_relu",
                   "aten::leaky_relu_", "aten::relu6", "aten::relu6_", "aten::silu", "aten::silu_", "aten::gelu",
                   "aten::gelu_"}) {
      t[n] = per_input_element;
    }
    // F.{avg,max}_pool{1,2,3}d and the adaptive ones, with the aten entry points they reach first.
    for (auto n : {"aten::avg_pool1d", "aten::avg_pool2d", "aten::avg_pool3d", "aten::max_pool1d",
                   "aten::max_pool2d", "aten::max_pool3d", "aten::max_pool1d_with_indices",
                   "aten::max_pool2d_with_indices", "aten::max_pool3d_with_indices", "aten::adaptive_avg_pool1d",
                   "aten::adaptive_avg_pool2d", "aten::adaptive_avg_pool3d", "aten::_adaptive_avg_pool2d",
                   "aten::_adaptive_avg_pool3d", "aten::adaptive_max_pool1d", "aten::adaptive_max_pool2d",
                   "aten::adaptive_max_pool3d"}) {
      t[n] = per_input_element;
    }
    for (auto n : {"aten::softmax", "aten::_softmax"}) t[n] = per_input_element;
    for (auto n : {"aten::layer_norm", "aten::native_layer_norm", "aten::rms_norm"}) t[n] = layer_norm;
    t["aten::group_norm"] = group_norm;
    t["aten::native_group_norm"] = native_group_norm;
    t["aten::instance_norm"] = instance_norm;
    for (auto n : {"aten::batch_norm", "aten::native_batch_norm", "aten::_batch_norm_impl_index"}) {
      t[n] = batch_norm;
    }
    for (auto n : {"aten::upsample_nearest1d", "aten::upsample_nearest2d", "aten::upsample_nearest3d",
                   "aten::_upsample_nearest_exact1d", "aten::_upsample_nearest_exact2d",
                   "aten::_upsample_nearest_exact3d", "aten::upsample_linear1d", "aten::upsample_bilinear2d",
                   "aten::upsample_bicubic2d", "aten::upsample_trilinear3d"}) {
      t[n] = upsample;
    }
    // The per-backend kernels too, for code that calls one directly (ops::qkv_attention calls cuDNN's); inside
    // scaled_dot_product_attention they are nested, so not counted again.
    for (auto n : {"aten::scaled_dot_product_attention", "aten::_scaled_dot_product_cudnn_attention",
                   "aten::_scaled_dot_product_flash_attention", "aten::_scaled_dot_product_efficient_attention"}) {
      t[n] = attention;
    }
    for (auto n : {"aten::add", "aten::mul"}) t[n] = elementwise;
    // Zero-cost in DeepSpeed (embedding, dropout); kept as recognised so the operators they are built from
    // (index_select, mul by a mask) are not counted. Cross-entropy likewise: DeepSpeed never sees inside it.
    for (auto n : {"aten::embedding", "aten::embedding_bag", "aten::dropout", "aten::dropout_",
                   "aten::feature_dropout", "aten::alpha_dropout", "aten::feature_alpha_dropout",
                   "aten::native_dropout", "aten::cross_entropy_loss"}) {
      t[n] = zero;
    }
    return t;
  }();
  return table;
}

}  // namespace

std::optional<OpCount> count_op(std::string_view op_name, c10::ArrayRef<const c10::IValue> inputs) noexcept {
  const auto& table = formulas();
  const auto it = table.find(op_name);
  if (it == table.end()) return std::nullopt;
  try {
    return it->second(inputs);
  } catch (...) {  // an argument of a form the schema did not lead us to expect (symbolic sizes, ...)
    return std::nullopt;
  }
}

}  // namespace deepspeed::profiling::detail
