#include "src/ops/linear_gemms.h"

#include <ATen/core/Tensor.h>

#include "src/util/env.h"

namespace deepspeed::ops::detail {
namespace {

bool switched_on(const char* variable) {
#ifdef DS_WITH_CUBLASLT
  return util::env_is(variable);
#else
  (void)variable;
  return false;
#endif
}

// The epilogue that reads or writes `bias`, where it is defined.
LtProblem with_bias(LtProblem p, const at::Tensor& bias, LtProblem::Epilogue epilogue) {
  if (bias.defined()) {
    p.epilogue = epilogue;
    p.bias = bias.data_ptr();
    p.bias_type = bias.scalar_type();
  }
  return p;
}

}  // namespace

bool linear_epilogue_requested() { return switched_on("DS_LINEAR_EPILOGUE"); }
bool gemm_tuning_requested() { return tuned_gemm_choice() != LtChoice::kHeuristic; }
// On unless DS_GEMM_TUNED=0: the exact choice gives the heuristic's bits, so a default on changes no result.
LtChoice tuned_gemm_choice() {
#ifdef DS_WITH_CUBLASLT
  if (util::env_is("DS_GEMM_TUNED", "0")) return LtChoice::kHeuristic;
  if (util::env_is("DS_GEMM_TUNED", "any")) return LtChoice::kTimed;
  return LtChoice::kTimedExact;
#else
  return LtChoice::kHeuristic;
#endif
}
bool bias_grad_kernel_requested() { return util::env_is("DS_LINEAR_BIAS_KERNEL"); }

// Row-major [r, c] contiguous is, as cuBLASLt counts (column-major), c × r with leading dimension c: each
// product below is written transposed, Dᵀ = op(B)ᵀ·op(A)ᵀ, so that no operand moves.

LtProblem forward_problem(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, at::Tensor& y) {
  // yᵀ (out × rows) = W (stored in × out, transposed) · xᵀ (in × rows).
  LtProblem p;
  p.transpose_a = true;
  p.m = weight.size(0), p.n = x.size(0), p.k = x.size(1);
  p.lda = x.size(1), p.ldb = x.size(1), p.ldd = weight.size(0);
  p.a = weight.data_ptr(), p.b = x.data_ptr(), p.d = y.data_ptr();
  p.type = x.scalar_type();
  return with_bias(p, bias, LtProblem::Epilogue::kBias);
}

LtProblem input_grad_problem(const at::Tensor& dy, const at::Tensor& weight, at::Tensor& dx) {
  // dxᵀ (in × rows) = W (stored in × out) · dyᵀ (out × rows).
  LtProblem p;
  p.m = weight.size(1), p.n = dy.size(0), p.k = weight.size(0);
  p.lda = weight.size(1), p.ldb = dy.size(1), p.ldd = weight.size(1);
  p.a = weight.data_ptr(), p.b = dy.data_ptr(), p.d = dx.data_ptr();
  p.type = dy.scalar_type();
  return p;
}

LtProblem weight_grad_problem(const at::Tensor& dy, const at::Tensor& x, at::Tensor& dweight, at::Tensor& dbias) {
  // dWᵀ (in × out) = xᵀ (in × rows) · dy (stored out × rows, transposed). BGRADB sums op(B) = dy (rows × out)
  // over k = rows: one value per output feature, dbias.
  LtProblem p;
  p.transpose_b = true;
  p.m = x.size(1), p.n = dy.size(1), p.k = dy.size(0);
  p.lda = x.size(1), p.ldb = dy.size(1), p.ldd = x.size(1);
  p.a = x.data_ptr(), p.b = dy.data_ptr(), p.d = dweight.data_ptr();
  p.type = dy.scalar_type();
  return with_bias(p, dbias, LtProblem::Epilogue::kBiasGradB);
}

namespace {

// GELU's input matrix has the output's shape (out × rows as cuBLASLt counts, leading dimension out).
LtProblem with_gelu_input(LtProblem p, LtProblem::Epilogue epilogue, const at::Tensor& gelu_in) {
  p.epilogue = epilogue;
  p.aux = gelu_in.data_ptr();
  p.ldaux = gelu_in.size(1);
  return p;
}

}  // namespace

LtProblem gelu_forward_problem(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, at::Tensor& y,
                               at::Tensor& gelu_in) {
  return with_gelu_input(forward_problem(x, weight, bias, y), LtProblem::Epilogue::kGeluAuxBias, gelu_in);
}

LtProblem dgelu_input_grad_problem(const at::Tensor& dy, const at::Tensor& weight, const at::Tensor& gelu_in,
                                   at::Tensor& dx, at::Tensor& dbias) {
  const auto epilogue = dbias.defined() ? LtProblem::Epilogue::kDGeluBGrad : LtProblem::Epilogue::kDGelu;
  return with_gelu_input(with_bias(input_grad_problem(dy, weight, dx), dbias, epilogue), epilogue, gelu_in);
}

#ifdef DS_WITH_CUBLASLT
bool linear_forward(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, at::Tensor& y,
                    LtChoice choice) {
  return lt_matmul(forward_problem(x, weight, bias, y), choice);
}

bool linear_input_grad(const at::Tensor& dy, const at::Tensor& weight, at::Tensor& dx, LtChoice choice) {
  return lt_matmul(input_grad_problem(dy, weight, dx), choice);
}

bool weight_and_bias_grad(const at::Tensor& dy, const at::Tensor& x, at::Tensor& dweight, at::Tensor& dbias,
                          LtChoice choice) {
  return lt_matmul(weight_grad_problem(dy, x, dweight, dbias), choice);
}
#else
bool linear_forward(const at::Tensor&, const at::Tensor&, const at::Tensor&, at::Tensor&, LtChoice) { return false; }
bool linear_input_grad(const at::Tensor&, const at::Tensor&, at::Tensor&, LtChoice) { return false; }
bool weight_and_bias_grad(const at::Tensor&, const at::Tensor&, at::Tensor&, at::Tensor&, LtChoice) { return false; }
#endif

}  // namespace deepspeed::ops::detail
