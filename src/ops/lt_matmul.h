#pragma once
// Internal to deepspeed::ops: one GEMM through cuBLASLt on LibTorch's handle, workspace and current stream, with
// the algorithm chosen once per problem and cached. Only built where cuBLASLt's header was found
// (DS_WITH_CUBLASLT); its entry points come from the copy LibTorch loaded (cublas_lt.h).
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include <c10/core/ScalarType.h>

namespace deepspeed::ops::detail {

/// D = op(A)·op(B), column-major as cuBLASLt counts (D is m × n, op(A) m × k, op(B) k × n; A, B and D of
/// `type`, fp32 accumulation, beta 0), optionally with an epilogue:
/// - kBias: D += bias broadcast over the columns (bias [m], `bias_type`, read);
/// - kBiasGradB: bias [n] = Σ over k of op(B) (written in `bias_type`), the bias gradient of a layer whose
///   output gradient is op(B);
/// - kGeluAuxBias: aux = D + bias, then D = gelu_tanh(aux) (aux m × n of `type`, leading dimension ldaux ≥ m and
///   a multiple of 8, written; bias [m] read): an MLP's first layer, keeping GELU's input for backward;
/// - kDGeluBGrad: D = (op(A)·op(B)) ⊙ gelu_tanh'(aux) (aux read) and bias [m] = Σ over the columns of that D
///   (written): the gradient at GELU's input and the first layer's bias gradient, from the second layer's
///   input-gradient GEMM. On Hopper (H100, cuBLASLt of CUDA 13, 2026-12-05) cuBLASLt runs the bias sums as a
///   separate kernel at ~0.2 TB/s: the call takes 3.6× the plain GEMM's time at GPT-2 1.5B's MLP width, so
///   ops::gelu_mlp does not use it;
/// - kDGelu: D = (op(A)·op(B)) ⊙ gelu_tanh'(aux) (aux read), no bias: kDGeluBGrad without its sums.
struct LtProblem {
  enum class Epilogue { kNone, kBias, kBiasGradB, kGeluAuxBias, kDGeluBGrad, kDGelu };
  bool transpose_a = false, transpose_b = false;
  std::int64_t m = 0, n = 0, k = 0, lda = 0, ldb = 0, ldd = 0;
  const void* a = nullptr;
  const void* b = nullptr;
  void* d = nullptr;
  at::ScalarType type = at::kBFloat16;
  Epilogue epilogue = Epilogue::kNone;
  void* bias = nullptr;
  at::ScalarType bias_type = at::kBFloat16;
  void* aux = nullptr;
  std::int64_t ldaux = 0;
};

/// How the algorithm of a problem not seen before is chosen:
/// - kHeuristic: the heuristic's first;
/// - kTimedExact: the fastest (median of five interleaved rounds, timed on this call's own buffers, the first call
///   then waiting for the device) of those among the heuristic's first eight whose output has, on this call's
///   inputs, the same bits as the first's: the speed of a timed choice with kHeuristic's results, whichever
///   candidate the timings favour, so runs reproduce bit for bit. Where the first's output is constant (a zero
///   weight, say) nothing can be told apart and the first is kept;
/// - kTimed: the fastest of the eight whatever they add in what order (split-K included): results can differ
///   from run to run with the timings.
enum class LtChoice { kHeuristic, kTimed, kTimedExact };

/// What the last run of a problem wrote (D, and the bias or aux its epilogue writes), as a 64-bit hash of the
/// bits, and whether they vary at all (a constant output cannot tell two orders of addition apart).
struct LtBits {
  std::uint64_t hash = 0;
  bool varied = false;
  bool operator==(const LtBits& o) const { return hash == o.hash && varied == o.varied; }
  bool operator!=(const LtBits& o) const { return !(*this == o); }
};

/// The bits `p`'s outputs hold now, hashed on the current stream; waits for it. Not during a graph capture.
LtBits lt_output_bits(const LtProblem& p);

/// One of cuBLASLt's algorithms for a problem (its cublasLtMatmulAlgo_t, held opaquely so that this header
/// needs no cuBLASLt header) and the workspace its heuristic said it needs.
struct LtAlgorithm {
  std::array<std::uint64_t, 8> data{};
  std::size_t workspace_bytes = 0;
};

/// True unless DS_GEMM_MEMSET_FREE=0 (read at each call). Then lt_matmul's algorithms are, first, those cuBLASLt
/// offers within no workspace, run without one, and after them those it offers only within LibTorch's workspace
/// (split-K, say), run with it; "the heuristic's first" below is the first of the no-workspace list. On Hopper
/// that list holds the kernels the heuristic chooses anyway, which given a workspace take 4 bytes of it and clear
/// them with a memset before every launch: ~580 memsets and their launch gaps a GPT-2 1.5B step, +0.8 % (H100,
/// 2026-12-05). With DS_GEMM_MEMSET_FREE=0 every algorithm is offered within, and run with, LibTorch's workspace.
bool lt_memset_free_requested();

/// The algorithms cuBLASLt's heuristic offers for `p` on the current device, best first, at most `most` (none
/// where cuBLASLt is not loaded or does not support the problem), within LibTorch's cuBLASLt workspace or, with
/// `without_workspace`, within none. For measuring them one by one (gemm_bench, gemm_launch_probe).
std::vector<LtAlgorithm> lt_algorithms(const LtProblem& p, int most, bool without_workspace = false);

/// Runs `p` with `algorithm` on the current stream, with LibTorch's workspace or none; false where cuBLASLt refuses
/// to launch it (an algorithm that needs a workspace, given none).
bool lt_run(const LtProblem& p, const LtAlgorithm& algorithm, bool without_workspace = false);

/// Runs `p` on the current device and stream. Returns false, having written nothing, where cuBLASLt is not
/// loaded or offers no algorithm for it (the caller then takes its own path); a failed launch of an algorithm
/// it offered is a JobError. Split-K partial sums are kept in fp32 (or the algorithm splits nothing). The
/// choice is cached per device, problem, epilogue, the buffers' alignments, LibTorch's workspace size, `choice` and
/// lt_memset_free_requested().
/// Thread-safe; a call that times candidates holds the cache's lock while it waits for them.
bool lt_matmul(const LtProblem& p, LtChoice choice);

}  // namespace deepspeed::ops::detail
