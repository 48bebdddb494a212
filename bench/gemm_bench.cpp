// How much of a GPT-2 step's GEMM time a per-shape choice of cuBLAS algorithm could save, measured before
// anything is built on it. For each GEMM of a training step (bf16, seq 1024, the GPT-2 suite's micro-batches)
// it times the call LibTorch makes (at::addmm / at::mm: cuBLAS's heuristic's first choice) against every
// algorithm cuBLASLt's heuristic offers for the same problem, and the weight GEMM with the bias gradient in
// its epilogue (BGRADB: ops::linear's DS_LINEAR_EPILOGUE=1) against mm + the row sum autograd runs. Every
// cuBLASLt result is checked against LibTorch's (a wrong layout prints WRONG and is not counted). The algorithms
// are the ones lt_matmul offers first: those within no workspace (run without one, so without cuBLASLt's memset)
// by default, those within LibTorch's workspace with DS_GEMM_MEMSET_FREE=0. The problems are
// the ones ops::linear hands cuBLASLt (src/ops/linear_gemms.h), so the checks hold its layouts too. The last
// column keeps only the algorithms whose output has the first's bits (what DS_GEMM_TUNED=1 chooses among, so that
// runs reproduce): how much of the per-shape gain survives that rule. For the biased
// layers it also times the weight GEMM alone ("dW alone", outside the step's totals): what the layer's weight
// gradient costs where the bias gradient is summed elsewhere (ops::linear_chunks sums c_attn's while it joins
// q's, k's and v's gradients), against BGRADB's GEMM. The MLP's epilogue GEMMs (ops::gelu_mlp: c_fc's forward with
// bias and GELU, mlp.c_proj's input gradient with GELU's derivative and c_fc's bias gradient) are timed beside the
// plain GEMMs they replace, also outside the totals, with what ops::gelu_mlp runs since 2026-12-05 (DGELU without
// the bias sums, which c_fc's weight GEMM takes in its BGRADB epilogue).
//
//   build/bench/gemm_bench [--models "124M 350M 1.5B"] [--algos 16] [--iters 20]
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <CLI/CLI.hpp>

#include "bench/gpt2_shapes.h"
#include "src/ops/linear_gemms.h"
#include "src/ops/lt_matmul.h"

namespace {

using namespace deepspeed::ops::detail;
using deepspeed::bench::time_ms;
using Model = deepspeed::bench::Gpt2Shape;

// One GEMM of the step, row-major as LibTorch sees it: out [rows, cols] from a [rows, inner].
struct Gemm {
  std::string name;
  std::int64_t rows, cols, inner, per_step;
  std::function<void()> libtorch;  // the call autograd makes
  LtProblem problem;               // the same product as ops::linear hands it to cuBLASLt
  at::Tensor out, expected, bias_out, bias_expected;
  bool alternative = false;  // another way to a row above, timed beside it, not added to the step's totals
};

std::string fixed(double ms) {
  char text[32];
  std::snprintf(text, sizeof text, "%.3f", ms);
  return text;
}

double relative_error(const at::Tensor& got, const at::Tensor& want) {
  const auto w = want.to(at::kFloat);
  return ((got.to(at::kFloat) - w).abs().max() / (w.abs().max() + 1e-20)).item<double>();
}

struct LtResult {
  int offered = 0, best_rank = -1, exact_rank = -1, exact_count = 0;
  double first_ms = -1, best_ms = -1, exact_ms = -1;  // exact: the best of those with the first's bits
  bool wrong = false;
};

// Times every algorithm the heuristic offers for `g` (up to `max_algos`), checking each one's output, and tells
// those whose output has the first's bits (LtChoice::kTimedExact's candidates) from the others.
LtResult time_lt(Gemm& g, int max_algos, int iters) {
  // The list lt_matmul offers first: within no workspace by default, within LibTorch's with DS_GEMM_MEMSET_FREE=0.
  const bool none = lt_memset_free_requested();
  const auto algos = lt_algorithms(g.problem, max_algos, none);
  LtResult r;
  r.offered = static_cast<int>(algos.size());
  LtBits first_bits;
  for (std::size_t i = 0; i < algos.size(); ++i) {
    bool launched = true;
    const auto run = [&] { launched = lt_run(g.problem, algos[i], none) && launched; };
    g.out.zero_();
    run();
    // bf16 outputs of fp32 sums taken in another order: a few units in the last place of the largest value.
    bool right = launched && relative_error(g.out, g.expected) < 2e-2;
    if (g.bias_out.defined()) right = right && relative_error(g.bias_out, g.bias_expected) < 2e-2;
    if (!right) {
      r.wrong = r.wrong || launched;
      continue;
    }
    const LtBits bits = lt_output_bits(g.problem);
    if (i == 0) first_bits = bits;
    const bool exact = i == 0 || (first_bits.varied && bits == first_bits);
    const double ms = time_ms(run, iters);
    if (i == 0) r.first_ms = ms;
    if (r.best_ms < 0 || ms < r.best_ms) {
      r.best_ms = ms;
      r.best_rank = static_cast<int>(i) + 1;
    }
    if (exact && r.first_ms > 0) {
      ++r.exact_count;
      if (r.exact_ms < 0 || ms < r.exact_ms) {
        r.exact_ms = ms;
        r.exact_rank = static_cast<int>(i) + 1;
      }
    }
  }
  return r;
}

// Weight gradient dW [out, in] = dyᵀ·x; with `bias_sum` also dbias = Σ_rows dy, autograd's mm + sum against
// cuBLASLt's BGRADB, which takes both in one call.
Gemm weight_gemm(const std::string& name, const at::Tensor& dy, const at::Tensor& x, std::int64_t per_step,
                 bool bias_sum) {
  const std::int64_t rows = dy.size(0), out = dy.size(1), in = x.size(1);
  Gemm g{name, out, in, rows, per_step};
  g.out = at::empty({out, in}, dy.options());
  g.expected = at::mm(dy.t(), x);
  if (bias_sum) {
    g.bias_out = at::empty({out}, dy.options());
    g.bias_expected = dy.sum(0);
    g.libtorch = [dy, x, dw = g.out, db = g.bias_out]() mutable {
      at::mm_out(dw, dy.t(), x);
      at::sum_out(db, dy, at::IntArrayRef{0});
    };
  } else {
    g.libtorch = [dy, x, dw = g.out]() mutable { at::mm_out(dw, dy.t(), x); };
  }
  g.problem = weight_grad_problem(dy, x, g.out, g.bias_out);
  return g;
}

// The GEMMs of one GPT-2 step with their LibTorch calls and cuBLASLt views. Tensors live in `keep`.
std::vector<Gemm> step_gemms(const Model& model, std::vector<at::Tensor>& keep) {
  const auto opts = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  const std::int64_t rows = model.micro * 1024;
  std::vector<Gemm> gemms;
  for (const auto& l : deepspeed::bench::gpt2_linears(model)) {
    const at::Tensor x = at::randn({rows, l.in}, opts), w = at::randn({l.out, l.in}, opts) * 0.02,
                     bias = at::randn({l.out}, opts), dy = at::randn({rows, l.out}, opts) * 0.01;
    keep.insert(keep.end(), {x, w, bias, dy});
    // Forward: y [rows, out] = x·Wᵀ (+ bias).
    Gemm f{"fwd " + l.name, rows, l.out, l.in, l.per_step};
    f.out = at::empty({rows, l.out}, opts);
    if (l.biased) {
      f.libtorch = [x, w, bias, y = f.out]() mutable { at::addmm_out(y, bias, x, w.t()); };
      f.expected = at::addmm(bias, x, w.t());
    } else {
      f.libtorch = [x, w, y = f.out]() mutable { at::mm_out(y, x, w.t()); };
      f.expected = at::mm(x, w.t());
    }
    f.problem = forward_problem(x, w, l.biased ? bias : at::Tensor(), f.out);
    gemms.push_back(f);
    // Input gradient: dx [rows, in] = dy·W.
    Gemm d{"dx  " + l.name, rows, l.in, l.out, l.per_step};
    d.out = at::empty({rows, l.in}, opts);
    d.libtorch = [dy, w, dx = d.out]() mutable { at::mm_out(dx, dy, w); };
    d.expected = at::mm(dy, w);
    d.problem = input_grad_problem(dy, w, d.out);
    gemms.push_back(d);
    // Weight gradient: dW [out, in] = dyᵀ·x (+ the bias gradient where autograd sums it after the GEMM).
    gemms.push_back(weight_gemm((l.biased ? "dW+db " : "dW  ") + l.name, dy, x, l.per_step, l.biased));
    if (l.biased) {
      Gemm alone = weight_gemm("dW alone " + l.name, dy, x, l.per_step, false);
      alone.alternative = true;
      gemms.push_back(alone);
    }
    // ops::gelu_mlp's epilogue GEMMs (DS_MLP_EPILOGUE=1, measured 4-8 % slower a step): each beside the plain
    // GEMM it replaces, so the table tells whether cuBLASLt's epilogue kernels are the cost. LibTorch's column
    // is the unfused work they stand for (the GEMM and GELU's pass).
    if (l.name == "c_fc") {
      Gemm e{"fwd c_fc +bias+GELU", rows, l.out, l.in, l.per_step};
      e.out = at::empty({rows, l.out}, opts);
      const at::Tensor gelu_in = at::empty({rows, l.out}, opts);
      keep.push_back(gelu_in);
      e.expected = at::gelu(at::addmm(bias, x, w.t()), "tanh");
      e.libtorch = [x, w, bias, y = e.out]() mutable { at::gelu_out(y, at::addmm(bias, x, w.t()), "tanh"); };
      at::Tensor kept = gelu_in;
      e.problem = gelu_forward_problem(x, w, bias, e.out, kept);
      e.alternative = true;
      gemms.push_back(e);
      // ops::gelu_mlp's weight gradient of c_fc, its bias gradient summed in the epilogue (BGRADB).
      Gemm b = weight_gemm("dW+db c_fc", dy, x, l.per_step, true);
      b.alternative = true;
      gemms.push_back(b);
    }
    if (l.name == "mlp.c_proj") {
      Gemm e{"dx  mlp.c_proj +dGELU+db", rows, l.in, l.out, l.per_step};
      e.out = at::empty({rows, l.in}, opts);
      e.bias_out = at::empty({l.in}, opts);
      const at::Tensor gelu_in = at::randn({rows, l.in}, opts);
      keep.push_back(gelu_in);
      e.expected = at::gelu_backward(at::mm(dy, w), gelu_in, "tanh");
      e.bias_expected = e.expected.sum(0);
      e.libtorch = [dy, w, gelu_in, dx = e.out, db = e.bias_out]() mutable {
        at::gelu_backward_out(dx, at::mm(dy, w), gelu_in, "tanh");
        at::sum_out(db, dx, at::IntArrayRef{0});
      };
      e.problem = dgelu_input_grad_problem(dy, w, gelu_in, e.out, e.bias_out);
      e.alternative = true;
      gemms.push_back(e);
      // What ops::gelu_mlp runs instead: DGELU alone, the bias gradient left to c_fc's weight GEMM (above).
      Gemm g{"dx  mlp.c_proj +dGELU", rows, l.in, l.out, l.per_step};
      g.out = at::empty({rows, l.in}, opts);
      g.expected = e.expected;
      g.libtorch = [dy, w, gelu_in, dx = g.out]() mutable {
        at::gelu_backward_out(dx, at::mm(dy, w), gelu_in, "tanh");
      };
      at::Tensor none;
      g.problem = dgelu_input_grad_problem(dy, w, gelu_in, g.out, none);
      g.alternative = true;
      gemms.push_back(g);
    }
  }
  return gemms;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"gemm_bench"};
  std::string models_arg = "124M 350M 1.5B";
  int algos = 16, iters = 20;
  app.add_option("--models", models_arg, "GPT-2 sizes, space-separated");
  app.add_option("--algos", algos, "how many of cuBLASLt's heuristic's algorithms to time")->check(CLI::Range(1, 64));
  app.add_option("--iters", iters, "timed calls per algorithm")->check(CLI::Range(1, 1000));
  CLI11_PARSE(app, argc, argv);
  const auto models = deepspeed::bench::parse_gpt2_shapes(models_arg, "gemm_bench");
  if (!models) return 2;
  if (!at::hasCUDA()) {
    std::printf("gemm_bench: needs a CUDA device\n");
    return 77;
  }
  for (const Model& shape : *models) {
    const Model* model = &shape;
    std::vector<at::Tensor> keep;
    auto gemms = step_gemms(*model, keep);
    std::printf("\n%s (micro-batch %lld, seq 1024, bf16)\n\n", model->name.c_str(), static_cast<long long>(model->micro));
    std::printf("| GEMM | M×N×K | per step | LibTorch ms | TF/s | cuBLASLt #1 ms | best ms (rank of %d) | TF/s | saved ms/step "
                "| #1's bits: best ms (rank; how many) |\n",
                algos);
    std::printf("|---|---|---|---|---|---|---|---|---|---|\n");
    double libtorch_step = 0, best_step = 0, first_step = 0, exact_step = 0, epilogue_libtorch = 0, epilogue_best = 0;
    double alone_best = 0;
    for (auto& g : gemms) {
      const double flop = 2.0 * static_cast<double>(g.rows) * static_cast<double>(g.cols) * static_cast<double>(g.inner);
      const double ours = time_ms(g.libtorch, iters);
      const LtResult lt = time_lt(g, algos, iters);
      const double best = lt.best_ms > 0 ? std::min(lt.best_ms, ours) : ours;
      const double count = static_cast<double>(g.per_step);
      if (g.alternative) {
        alone_best += best * count;
      } else {
        libtorch_step += ours * count;
        best_step += best * count;
        first_step += (lt.first_ms > 0 ? lt.first_ms : ours) * count;
        exact_step += (lt.exact_ms > 0 ? lt.exact_ms : ours) * count;
      }
      if (!g.alternative && g.problem.epilogue == LtProblem::Epilogue::kBiasGradB) {
        epilogue_libtorch += ours * count;
        epilogue_best += (lt.best_ms > 0 ? lt.best_ms : ours) * count;
      }
      const std::string first = lt.first_ms > 0 ? fixed(lt.first_ms) : "—";
      const std::string best_cell = lt.best_ms > 0 ? fixed(lt.best_ms) + " (" + std::to_string(lt.best_rank) + " of " +
                                                         std::to_string(lt.offered) + ")"
                                                   : "none offered";
      const std::string exact_cell = lt.exact_ms > 0 ? fixed(lt.exact_ms) + " (" + std::to_string(lt.exact_rank) + "; " +
                                                           std::to_string(lt.exact_count) + ")"
                                                     : "—";
      std::printf("| %s | %lld×%lld×%lld | %lld | %.3f | %.0f | %s | %s | %.0f | %.2f | %s |%s\n", g.name.c_str(),
                  static_cast<long long>(g.rows), static_cast<long long>(g.cols), static_cast<long long>(g.inner),
                  static_cast<long long>(g.per_step), ours, flop / ours * 1e-9, first.c_str(), best_cell.c_str(),
                  flop / best * 1e-9, (ours - best) * count, exact_cell.c_str(),
                  lt.wrong ? " WRONG result from an algorithm" : "");
    }
    std::printf("\n%s: GEMMs as LibTorch runs them %.2f ms/step; cuBLASLt's first choice %.2f; each shape's best "
                "%.2f (%.1f %% less than LibTorch); the best with the first's bits %.2f (%.1f %% less). Weight GEMM "
                "+ bias sum: mm + sum %.2f ms/step, BGRADB (best) %.2f; the weight GEMMs alone (best) %.2f.\n",
                model->name.c_str(), libtorch_step, first_step, best_step, 100.0 * (1.0 - best_step / libtorch_step),
                exact_step, 100.0 * (1.0 - exact_step / libtorch_step), epilogue_libtorch, epilogue_best, alone_best);
  }
  return 0;
}
