// The memory-bound kernels of ops/ (and the one-pass gradient norm) alone, each beside what it replaces, at the
// GPT-2 suite's shapes (bf16, seq 1024, its micro-batches): time per call and the bytes the op has to move per
// second, so a kernel change is read against the device's bandwidth without a model step's noise around it.
// Switches read at each launch (DS_BIAS_GELU_TANHF, DS_BIAS_GELU_UNROLL=1, DS_ADD_LAYER_NORM_SPLIT,
// DS_ADD_LAYER_NORM_PIPELINED=0) are set for their rows only. Each model's first table is a plain device copy of
// the MLP activation's bytes: the bandwidth the memory-bound rows below can be held against, in the same call.
//
//   build/bench/ops_bench [--models "124M 1.5B"] [--iters 20]
//
// "GB/s" is the op's own traffic (each input read once, each output written once) over its time, for every
// row of an op alike, so a reference that reads its data twice shows as slower, not as busier.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>
#include <CLI/CLI.hpp>

#include "bench/gpt2_shapes.h"
#include "src/ops/add_layer_norm_kernel.h"
#include "src/ops/bias_gelu_kernel.h"
#include "src/ops/cross_entropy_kernel.h"
#include "src/ops/cudnn_sdpa.h"
#include "src/ops/launch_support.h"
#include "src/ops/linear_chunks_kernel.h"
#include "src/optim/multi_tensor_norm.h"

namespace {

using namespace deepspeed::ops::detail;
using deepspeed::bench::time_ms;
using Model = deepspeed::bench::Gpt2Shape;

constexpr std::int64_t kVocab = 50304, kSeq = 1024;

// One environment variable set for a row, unset after it.
struct Env {
  Env(const char* name, const char* value) : name_(name) {
    if (name_) setenv(name_, value, 1);
  }
  ~Env() {
    if (name_) unsetenv(name_);
  }
  const char* name_;
};

struct Row {
  std::string path;
  std::function<void()> run;
  const char* env = nullptr;  // a switch on for this row
  const char* value = "1";    // the switch's value
};

// Times each row of one op; the first row is the baseline of the "× first" column.
void op_table(const std::string& model, const std::string& op, double bytes, const std::vector<Row>& rows,
              int iters) {
  double first = 0;
  for (const Row& r : rows) {
    const Env env(r.env, r.value);
    const double ms = time_ms(r.run, iters);
    if (first == 0) first = ms;
    std::printf("| %s | %s | %s | %.3f | %.0f | %.2f |\n", model.c_str(), op.c_str(), r.path.c_str(), ms,
                bytes / ms * 1e-6, first / ms);
  }
}

cudaStream_t stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

void check(cudaError_t err) { check_launch(err, "ops_bench"); }

// The gradient list of a GPT-2 model (bf16), as the engine hands it to the norm.
std::vector<at::Tensor> gradient_list(const Model& m, const at::TensorOptions& o) {
  const std::int64_t c = m.n_embd;
  std::vector<at::Tensor> list = {at::randn({kVocab, c}, o), at::randn({kSeq, c}, o)};
  for (std::int64_t l = 0; l < m.n_layer; ++l) {
    for (const auto& shape : std::vector<std::vector<std::int64_t>>{
             {c}, {c}, {3 * c, c}, {3 * c}, {c, c}, {c}, {c}, {c}, {4 * c, c}, {4 * c}, {c, 4 * c}, {c}}) {
      list.push_back(at::randn(shape, o));
    }
  }
  list.push_back(at::randn({c}, o));
  list.push_back(at::randn({c}, o));
  return list;
}

// The attention backward with c_attn's output gradient made from it (GPT-2's head dim, 64; causal): LibTorch's
// cuDNN backward, which allocates dq, dk and dv apart, then linear_chunks' join with the bias sums (the default),
// against cuDNN's graph writing them into one [tokens, 3C] gradient (ops::qkv_attention), then the column sums or
// nothing more (the bias gradient then comes from the weight GEMM's epilogue, timed in gemm_bench).
void bench_attention_backward(const Model& m, int iters) {
  const auto o = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  const auto bf16 = element_type(at::kBFloat16);
  const std::int64_t c = m.n_embd, heads = c / 64, b = m.micro, rows = b * kSeq;
  auto split = [&](const at::Tensor& packed) {
    std::vector<at::Tensor> views;
    for (const at::Tensor& part : packed.split(c, -1)) views.push_back(part.view({b, kSeq, heads, 64}).transpose(1, 2));
    return views;
  };
  const at::Tensor qkv = at::randn({b, kSeq, 3 * c}, o);
  const std::vector<at::Tensor> in = split(qkv);
  const auto fwd = at::_scaled_dot_product_cudnn_attention(in[0], in[1], in[2], std::nullopt, true, 0.0, true, false);
  const at::Tensor &out = std::get<0>(fwd), &stats = std::get<1>(fwd);
  const at::Tensor d_o = at::randn({b, kSeq, c}, o).view({b, kSeq, heads, 64}).transpose(1, 2);
  at::Tensor d_qkv = at::empty_like(qkv), db = at::empty({3 * c}, o);
  const std::vector<at::Tensor> d = split(d_qkv);
  const std::int64_t parts = bias_gelu_backward_parts(rows, 3 * c);
  at::Tensor ws = at::empty({parts, 3 * c}, o.dtype(at::kFloat));
  const SdpaBackwardArgs args{in[0], in[1], in[2], out, d_o, stats, d[0], d[1], d[2], 0.125f, true, false};
  std::string why;
  if (!cudnn_sdpa_backward(args, why)) {
    std::printf("| %s | attention backward | cuDNN's graph: not available (%s) | | | |\n", m.name.c_str(), why.c_str());
    return;
  }
  const auto graph = [&] { cudnn_sdpa_backward(args, why); };
  op_table(m.name, "attention backward → c_attn's gradient", 12.0 * rows * c,
           {{"LibTorch's cuDNN backward + linear_chunks (the default)",
             [&] {
               auto [g_q, g_k, g_v] = at::_scaled_dot_product_cudnn_attention_backward(
                   d_o, in[0], in[1], in[2], out, stats, std::get<6>(fwd), std::get<7>(fwd), at::Tensor(),
                   at::Tensor(), at::Tensor(), kSeq, kSeq, 0.0, true);
               std::vector<at::Tensor> g;
               for (const at::Tensor* t : {&g_q, &g_k, &g_v}) {
                 g.push_back(t->transpose(1, 2).reshape({rows, c}).contiguous());
               }
               const std::vector<const void*> pointers = {g[0].data_ptr(), g[1].data_ptr(), g[2].data_ptr()};
               check(launch_linear_chunks_backward(bf16, bf16, pointers.data(), 3, rows, c, d_qkv.data_ptr(),
                                                  db.data_ptr(), ws.data_ptr<float>(), parts, stream()));
             }},
            {"cuDNN's graph into one gradient + column sums (qkv_attention, DS_LINEAR_BIAS_KERNEL=1)",
             [&] {
               graph();
               check(launch_bias_grad(bf16, bf16, d_qkv.data_ptr(), db.data_ptr(), ws.data_ptr<float>(), parts, rows,
                                      3 * c, stream()));
             }},
            {"cuDNN's graph into one gradient (qkv_attention; the bias in the weight GEMM)", graph}},
           iters);
}

void bench_model(const Model& m, int iters) {
  const auto o = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  const auto f32 = o.dtype(at::kFloat);
  const auto bf16 = element_type(at::kBFloat16);
  const std::int64_t c = m.n_embd, rows = m.micro * kSeq, h = 4 * c;
  at::manual_seed(0);

  // The ceiling: ATen's device copy of the MLP activation ([tokens, 4C]), one read and one write.
  {
    const at::Tensor from = at::randn({rows, h}, o);
    at::Tensor to = at::empty({rows, h}, o);
    op_table(m.name, "copy (the bandwidth ceiling)", 4.0 * rows * h, {{"at::Tensor::copy_", [&] { to.copy_(from); }}},
             iters);
  }
  // The QKV projection's output gradient from q's, k's and v's, with the bias gradient.
  {
    std::vector<at::Tensor> g = {at::randn({rows, c}, o), at::randn({rows, c}, o), at::randn({rows, c}, o)};
    const std::vector<const void*> pointers = {g[0].data_ptr(), g[1].data_ptr(), g[2].data_ptr()};
    at::Tensor dy = at::empty({rows, 3 * c}, o), db = at::empty({3 * c}, o);
    const std::int64_t parts = bias_gelu_backward_parts(rows, 3 * c);
    at::Tensor ws = at::empty({parts, 3 * c}, f32);
    op_table(m.name, "qkv grads + bias grad", 12.0 * rows * c,
             {{"at::cat + sum(0) (autograd of at::linear)",
               [&] {
                 at::cat_out(dy, g, 1);
                 at::sum_out(db, dy, at::IntArrayRef{0});
               }},
              {"at::cat + column sums (ops::linear)",
               [&] {
                 at::cat_out(dy, g, 1);
                 check(launch_bias_grad(bf16, bf16, dy.data_ptr(), db.data_ptr(), ws.data_ptr<float>(), parts, rows,
                                        3 * c, stream()));
               }},
              {"linear_chunks (the default)",
               [&] {
                 check(launch_linear_chunks_backward(bf16, bf16, pointers.data(), 3, rows, c, dy.data_ptr(),
                                                    db.data_ptr(), ws.data_ptr<float>(), parts, stream()));
               }}},
             iters);
  }
  // A projection's bias gradient (attn.c_proj, mlp.c_proj).
  {
    const at::Tensor dy = at::randn({rows, c}, o);
    at::Tensor db = at::empty({c}, o);
    const std::int64_t parts = bias_gelu_backward_parts(rows, c);
    at::Tensor ws = at::empty({parts, c}, f32);
    op_table(m.name, "bias grad", 2.0 * rows * c,
             {{"sum(0)", [&] { at::sum_out(db, dy, at::IntArrayRef{0}); }},
              {"column sums", [&] {
                 check(launch_bias_grad(bf16, bf16, dy.data_ptr(), db.data_ptr(), ws.data_ptr<float>(), parts, rows,
                                        c, stream()));
               }}},
             iters);
  }
  // Bias + GELU (tanh) over the MLP's hidden activation.
  {
    const at::Tensor x = at::randn({rows, h}, o), b = at::randn({h}, o), dy = at::randn({rows, h}, o);
    at::Tensor y = at::empty({rows, h}, o), dx = at::empty({rows, h}, o), db = at::empty({h}, o);
    const std::int64_t parts = bias_gelu_backward_parts(rows, h);
    at::Tensor ws = at::empty({parts, h}, f32);
    const auto forward = [&] {
      check(launch_bias_gelu_forward(bf16, bf16, x.data_ptr(), b.data_ptr(), y.data_ptr(), rows, h, stream()));
    };
    const auto backward = [&] {
      check(launch_bias_gelu_backward(bf16, bf16, dy.data_ptr(), x.data_ptr(), b.data_ptr(), dx.data_ptr(),
                                      db.data_ptr(), ws.data_ptr<float>(), parts, rows, h, stream()));
    };
    op_table(m.name, "bias+GELU forward", 4.0 * rows * h,
             {{"at::add + at::gelu(tanh)", [&] { y = at::gelu(x + b, "tanh"); }},
              {"fused, σ form, unrolled ×4 (default)", forward},
              {"fused, tanhf (DS_BIAS_GELU_TANHF=1)", forward, "DS_BIAS_GELU_TANHF"},
              {"fused, σ, one load a thread (DS_BIAS_GELU_UNROLL=1)", forward, "DS_BIAS_GELU_UNROLL"}},
             iters);
    op_table(m.name, "bias+GELU backward", 6.0 * rows * h,
             {{"at::add + gelu_backward + sum(0)", [&] { dx = at::gelu_backward(dy, x + b, "tanh"); db = dx.sum(0); }},
              {"fused, σ form, unrolled ×4 (default)", backward},
              {"fused, tanhf (DS_BIAS_GELU_TANHF=1)", backward, "DS_BIAS_GELU_TANHF"},
              {"fused, σ, one load a thread (DS_BIAS_GELU_UNROLL=1)", backward, "DS_BIAS_GELU_UNROLL"}},
             iters);
  }
  // Residual add + LayerNorm.
  {
    const at::Tensor residual = at::randn({rows, c}, o), branch = at::randn({rows, c}, o);
    const at::Tensor w = at::randn({c}, o), b = at::randn({c}, o), dy = at::randn({rows, c}, o),
                     dh_out = at::randn({rows, c}, o);
    at::Tensor hs = at::empty({rows, c}, o), y = at::empty({rows, c}, o), mean = at::empty({rows}, f32),
               rstd = at::empty({rows}, f32), dh = at::empty({rows, c}, o), dw = at::empty({c}, o),
               dbias = at::empty({c}, o);
    // Sized for every row below, the wide kernel's (DS_ADD_LAYER_NORM_WIDE) too: each kernel launches no more
    // blocks than it holds resident.
    const std::int64_t parts =
        std::max(add_layer_norm_backward_parts(rows, c), add_layer_norm_backward_wide_parts(rows, c));
    at::Tensor ws = at::empty({2, parts, c}, f32);
    const auto forward = [&] {
      check(launch_add_layer_norm_forward(bf16, bf16, residual.data_ptr(), branch.data_ptr(), nullptr, w.data_ptr(),
                                          b.data_ptr(), hs.data_ptr(), y.data_ptr(), mean.data_ptr<float>(),
                                          rstd.data_ptr<float>(), rows, c, 1e-5f, stream()));
    };
    const auto backward = [&] {
      check(launch_add_layer_norm_backward(bf16, bf16, dy.data_ptr(), hs.data_ptr(), mean.data_ptr<float>(),
                                           rstd.data_ptr<float>(), w.data_ptr(), dh_out.data_ptr(), dh.data_ptr(),
                                           dw.data_ptr(), dbias.data_ptr(), nullptr, ws.data_ptr<float>(), parts,
                                           rows, c, stream()));
    };
    op_table(m.name, "add+LayerNorm forward", 8.0 * rows * c,
             {{"at::add + at::layer_norm", [&] { y = at::layer_norm(residual + branch, {c}, w, b, 1e-5); }},
              {"fused", forward}},
             iters);
    forward();
    op_table(m.name, "add+LayerNorm backward", 8.0 * rows * c,
             {{"fused, pipelined (default)", backward},
              {"two passes (DS_ADD_LAYER_NORM_SPLIT=1)", backward, "DS_ADD_LAYER_NORM_SPLIT"},
              {"unpipelined (DS_ADD_LAYER_NORM_PIPELINED=0)", backward, "DS_ADD_LAYER_NORM_PIPELINED", "0"},
              {"a pack a thread (DS_ADD_LAYER_NORM_WIDE=1)", backward, "DS_ADD_LAYER_NORM_WIDE", "1"},
              {"a pack a thread, two rows ahead (DS_ADD_LAYER_NORM_WIDE=2)", backward, "DS_ADD_LAYER_NORM_WIDE", "2"}},
             iters);
  }
  // Cross-entropy over the LM head's logits: loss and gradient.
  {
    at::Tensor logits = at::randn({rows, kVocab}, o);
    const at::Tensor targets = at::randint(kVocab, {rows}, o.dtype(at::kLong));
    at::Tensor grad = at::empty({rows, kVocab}, o), loss_rows = at::empty({rows}, f32),
               lse_rows = at::empty({rows}, f32);
    at::Tensor leaf = logits.detach().requires_grad_(true);
    op_table(m.name, "cross-entropy + gradient", 4.0 * rows * kVocab,
             {{"at::cross_entropy_loss + backward",
               [&] {
                 leaf.mutable_grad() = at::Tensor();
                 at::cross_entropy_loss(leaf, targets).backward();
               }},
              {"fused", [&] {
                 check(launch_cross_entropy_forward(bf16, logits.data_ptr(), targets.data_ptr<std::int64_t>(),
                                                    loss_rows.data_ptr<float>(), lse_rows.data_ptr<float>(),
                                                    grad.data_ptr(), rows, kVocab, 1.0f / static_cast<float>(rows),
                                                    stream()));
               }}},
             iters);
  }
  // The gradient norm's sum of squares over the model's gradient list.
  {
    const std::vector<at::Tensor> list = gradient_list(m, o);
    if (!deepspeed::optim::detail::multi_tensor_squared_sum(list)) {
      std::printf("| %s | gradient norm (Σx²) | one pass: not built | | | |\n", m.name.c_str());
      return;
    }
    double numel = 0;
    for (const auto& t : list) numel += static_cast<double>(t.numel());
    op_table(m.name, "gradient norm (Σx²)", 2.0 * numel,
             {{"at::_foreach_norm + stack + norm", [&] { (void)at::stack(at::_foreach_norm(list, 2)).norm(); }},
              {"one pass (the default)",
               [&] { (void)deepspeed::optim::detail::multi_tensor_squared_sum(list); }}},
             iters);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ops_bench"};
  std::string models_arg = "124M 1.5B";
  int iters = 20;
  app.add_option("--models", models_arg, "GPT-2 sizes, space-separated (124M, 350M, 1.5B)");
  app.add_option("--iters", iters, "timed calls per row")->check(CLI::Range(1, 1000));
  CLI11_PARSE(app, argc, argv);
  const auto models = deepspeed::bench::parse_gpt2_shapes(models_arg, "ops_bench");
  if (!models) return 2;
  if (!at::hasCUDA()) {
    std::printf("ops_bench: needs a CUDA device\n");
    return 77;
  }
  std::printf("| model | op | path | ms | GB/s | × first row |\n|---|---|---|---|---|---|\n");
  for (const Model& m : *models) {
    bench_model(m, iters);
    bench_attention_backward(m, iters);  // last: cuDNN's graph API is the newest path here
  }
  return 0;
}
