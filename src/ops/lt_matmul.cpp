// Compiled out where cuBLASLt's header was not found (nothing calls it then).
#ifdef DS_WITH_CUBLASLT
#include "src/ops/lt_matmul.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

#include <ATen/cuda/CUDAContextLight.h>
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>

#include "src/ops/cublas_lt.h"
#include "src/util/env.h"

namespace deepspeed::ops::detail {
namespace {

void check(cublasStatus_t status, const char* what) { check_lt(status, "deepspeed::ops (cuBLASLt GEMM)", what); }

cublasLtEpilogue_t epilogue_of(LtProblem::Epilogue e) {
  switch (e) {
    case LtProblem::Epilogue::kBias: return CUBLASLT_EPILOGUE_BIAS;
    case LtProblem::Epilogue::kBiasGradB: return CUBLASLT_EPILOGUE_BGRADB;
    case LtProblem::Epilogue::kGeluAuxBias: return CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
    case LtProblem::Epilogue::kDGeluBGrad: return CUBLASLT_EPILOGUE_DGELU_BGRAD;
    case LtProblem::Epilogue::kDGelu: return CUBLASLT_EPILOGUE_DGELU;
    case LtProblem::Epilogue::kNone: break;
  }
  return CUBLASLT_EPILOGUE_DEFAULT;
}

// The matmul descriptor and the three layouts of one problem (the bias pointer is part of the descriptor).
struct Descriptors {
  LtOwned<cublasLtMatmulDesc_t> desc;
  LtOwned<cublasLtMatrixLayout_t> a, b, d;

  Descriptors(const CublasLt& lt, const LtProblem& p)
      : desc(lt.desc_destroy), a(lt.layout_destroy), b(lt.layout_destroy), d(lt.layout_destroy) {
    check(lt.desc_create(&desc.handle, CUBLAS_COMPUTE_32F, CUDA_R_32F), "descriptor");
    const cublasOperation_t op_a = p.transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t op_b = p.transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    check(lt.desc_set(desc.handle, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof op_a), "TRANSA");
    check(lt.desc_set(desc.handle, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof op_b), "TRANSB");
    if (p.epilogue != LtProblem::Epilogue::kNone) {
      const cublasLtEpilogue_t epilogue = epilogue_of(p.epilogue);
      check(lt.desc_set(desc.handle, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue), "epilogue");
    }
    if (p.epilogue != LtProblem::Epilogue::kNone && p.epilogue != LtProblem::Epilogue::kDGelu) {
      check(lt.desc_set(desc.handle, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &p.bias, sizeof p.bias), "bias pointer");
      const cudaDataType_t bias_type = cuda_data_type(p.bias_type);
      check(lt.desc_set(desc.handle, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof bias_type),
            "bias type");
    }
    if (p.epilogue == LtProblem::Epilogue::kGeluAuxBias || p.epilogue == LtProblem::Epilogue::kDGeluBGrad ||
        p.epilogue == LtProblem::Epilogue::kDGelu) {
      check(lt.desc_set(desc.handle, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &p.aux, sizeof p.aux), "aux pointer");
      check(lt.desc_set(desc.handle, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &p.ldaux, sizeof p.ldaux), "aux ld");
    }
    // A layout describes the matrix as stored, before its op.
    const cudaDataType_t type = cuda_data_type(p.type);
    check(lt.layout_create(&a.handle, type, p.transpose_a ? p.k : p.m, p.transpose_a ? p.m : p.k, p.lda), "layout A");
    check(lt.layout_create(&b.handle, type, p.transpose_b ? p.n : p.k, p.transpose_b ? p.k : p.n, p.ldb), "layout B");
    check(lt.layout_create(&d.handle, type, p.m, p.n, p.ldd), "layout D");
  }
};

// One algorithm the heuristic offered, the workspace it said it needs, and whether it runs with LibTorch's
// workspace (offered within it) or with none (offered within none).
struct Offer {
  cublasLtMatmulAlgo_t algo{};
  std::size_t workspace_bytes = 0;
  bool with_workspace = true;
};

struct Choice {
  bool found = false;
  Offer offer{};
};
// (device, ops, m, n, k, leading dimensions, type, epilogue, bias type, alignments of A, B, D, the bias and
// aux, aux's leading dimension, workspace bytes, choice, memset-free)
using Key = std::array<std::int64_t, 21>;
std::mutex choices_mutex;
std::map<Key, Choice> choices;

// The algorithms the heuristic offers for the problem within `workspace_bytes`, best first (at most `most`).
std::vector<Offer> offered(const CublasLt& lt, cublasLtHandle_t handle, const Descriptors& ds, const LtProblem& p,
                           int most, std::uint64_t workspace_bytes) {
  LtOwned<cublasLtMatmulPreference_t> preference(lt.preference_destroy);
  check(lt.preference_create(&preference.handle), "preference");
  check(lt.preference_set(preference.handle, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes,
                          sizeof workspace_bytes),
        "workspace preference");
  // The heuristic assumes 256-byte aligned buffers unless told: an algorithm chosen for more alignment than a
  // buffer has may fault.
  const std::uint32_t align_d = alignment_of(p.d);
  const std::pair<cublasLtMatmulPreferenceAttributes_t, std::uint32_t> alignments[] = {
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, alignment_of(p.a)},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, alignment_of(p.b)},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, align_d},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, align_d}};
  for (const auto& [attribute, value] : alignments) {
    check(lt.preference_set(preference.handle, attribute, &value, sizeof value), "alignment preference");
  }
  // Split-K partial sums in fp32 (or none): in place or in the output type they would be rounded to 16 bits
  // before their last additions.
  const std::uint32_t reductions = CUBLASLT_REDUCTION_SCHEME_NONE | CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
  check(lt.preference_set(preference.handle, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &reductions,
                          sizeof reductions),
        "reduction preference");
  std::vector<cublasLtMatmulHeuristicResult_t> results(static_cast<std::size_t>(most));
  int count = 0;
  if (lt.heuristic(handle, ds.desc.handle, ds.a.handle, ds.b.handle, ds.d.handle, ds.d.handle, preference.handle,
                   most, results.data(), &count) != CUBLAS_STATUS_SUCCESS) {
    return {};  // the problem not supported at all: the caller's own path
  }
  std::vector<Offer> algos;
  for (int i = 0; i < count; ++i) {
    const auto& r = results[static_cast<std::size_t>(i)];
    if (r.state == CUBLAS_STATUS_SUCCESS) algos.push_back({r.algo, r.workspaceSize, workspace_bytes > 0});
  }
  return algos;
}

// The memset-free offer: the algorithms offered within no workspace (run without one), then those offered within
// `workspace_bytes` that the first list lacks (split-K, say; run with it), at most `most` of each. On Hopper the
// no-workspace list holds the kernels the heuristic would choose anyway, which given a workspace take 4 bytes of
// it and clear them with a memset before every launch (gemm_launch_probe, 2026-12-05).
std::vector<Offer> offered_memset_free(const CublasLt& lt, cublasLtHandle_t handle, const Descriptors& ds,
                                       const LtProblem& p, int most, std::uint64_t workspace_bytes) {
  std::vector<Offer> algos = offered(lt, handle, ds, p, most, 0);
  if (workspace_bytes == 0) return algos;
  for (const Offer& o : offered(lt, handle, ds, p, most, workspace_bytes)) {
    const bool listed = std::any_of(algos.begin(), algos.end(), [&](const Offer& a) {
      return std::memcmp(&a.algo, &o.algo, sizeof o.algo) == 0;
    });
    if (!listed) algos.push_back(o);
  }
  return algos;
}

struct Launch {
  const CublasLt& lt;
  cublasLtHandle_t handle;
  const Descriptors& ds;
  const LtProblem& p;
  void* workspace;
  std::size_t workspace_bytes;
  cudaStream_t stream;

  cublasStatus_t operator()(const Offer& o) const {
    const float one = 1.0f, zero = 0.0f;
    return lt.matmul(handle, ds.desc.handle, &one, p.a, ds.a.handle, p.b, ds.b.handle, &zero, p.d, ds.d.handle, p.d,
                     ds.d.handle, &o.algo, o.with_workspace ? workspace : nullptr,
                     o.with_workspace ? workspace_bytes : 0, stream);
  }
};

// The candidates among `algos` (the heuristic's, best first): those cuBLASLt launches, each launched once here;
// with `exact`, only those whose output has the first's bits, and the first alone where it refuses to launch
// (kHeuristic's path then reports it) or its output is constant (nothing to tell orders of addition apart).
std::vector<Offer> candidates(const std::vector<Offer>& algos, const Launch& launch, bool exact) {
  std::vector<Offer> out;
  LtBits first;
  for (std::size_t i = 0; i < algos.size(); ++i) {
    if (launch(algos[i]) != CUBLAS_STATUS_SUCCESS) {  // offered but refused: not a candidate
      if (exact && i == 0) return {algos[0]};
      continue;
    }
    if (!exact) {
      out.push_back(algos[i]);
      continue;
    }
    const LtBits bits = lt_output_bits(launch.p);
    if (i == 0) {
      first = bits;
      out.push_back(algos[i]);
      if (!first.varied) return out;
    } else if (bits == first) {
      out.push_back(algos[i]);
    }
  }
  return out;
}

// The fastest of `runnable` on this problem's buffers, all launched once already. All are timed one launch at a
// time in interleaved rounds, so that a clock still ramping up (this runs in the first step) or another drift
// weighs on every candidate alike rather than on the first ones; each is judged by its median round.
Choice fastest(const std::vector<Offer>& runnable, const Launch& launch) {
  constexpr int kRounds = 5;
  Choice best;
  if (runnable.size() < 2) {
    best.found = !runnable.empty();
    if (best.found) best.offer = runnable.front();
    return best;
  }
  const auto stream = c10::cuda::getCurrentCUDAStream();
  std::vector<at::cuda::CUDAEvent> marks;
  marks.reserve(runnable.size() * kRounds * 2);
  std::vector<char> launched(runnable.size(), 1);
  for (int round = 0; round < kRounds; ++round) {
    for (std::size_t i = 0; i < runnable.size(); ++i) {
      marks.emplace_back(cudaEventDefault).record(stream);
      launched[i] = launched[i] && launch(runnable[i]) == CUBLAS_STATUS_SUCCESS;
      marks.emplace_back(cudaEventDefault).record(stream);
    }
  }
  marks.back().synchronize();
  float best_ms = 0.0f;
  for (std::size_t i = 0; i < runnable.size(); ++i) {
    if (!launched[i]) continue;
    std::vector<float> ms;
    for (int round = 0; round < kRounds; ++round) {
      const std::size_t at = (static_cast<std::size_t>(round) * runnable.size() + i) * 2;
      ms.push_back(marks[at].elapsed_time(marks[at + 1]));
    }
    std::nth_element(ms.begin(), ms.begin() + kRounds / 2, ms.end());
    const float median = ms[kRounds / 2];
    if (!best.found || median < best_ms) {
      best.found = true;
      best.offer = runnable[i];
      best_ms = median;
    }
  }
  return best;
}

static_assert(sizeof(cublasLtMatmulAlgo_t) == sizeof(LtAlgorithm::data), "LtAlgorithm holds one cublasLtMatmulAlgo_t");

Launch launcher(const CublasLt& lt, const Descriptors& ds, const LtProblem& p) {
  return Launch{lt, at::cuda::getCurrentCUDABlasLtHandle(), ds, p, at::cuda::getCUDABlasLtWorkspace(),
                at::cuda::getCUDABlasLtWorkspaceSize(), c10::cuda::getCurrentCUDAStream().stream()};
}

}  // namespace

bool lt_memset_free_requested() { return !util::env_is("DS_GEMM_MEMSET_FREE", "0"); }

std::vector<LtAlgorithm> lt_algorithms(const LtProblem& p, int most, bool without_workspace) {
  const CublasLt& lt = cublas_lt();
  if (!lt.loaded) return {};
  const Descriptors ds(lt, p);
  const Launch launch = launcher(lt, ds, p);
  std::vector<LtAlgorithm> out;
  for (const Offer& o : offered(lt, launch.handle, ds, p, most, without_workspace ? 0 : launch.workspace_bytes)) {
    LtAlgorithm a;
    std::memcpy(a.data.data(), &o.algo, sizeof o.algo);
    a.workspace_bytes = o.workspace_bytes;
    out.push_back(a);
  }
  return out;
}

bool lt_run(const LtProblem& p, const LtAlgorithm& algorithm, bool without_workspace) {
  const CublasLt& lt = cublas_lt();
  if (!lt.loaded) return false;
  const Descriptors ds(lt, p);
  Offer o;
  std::memcpy(&o.algo, algorithm.data.data(), sizeof o.algo);
  o.with_workspace = !without_workspace;
  return launcher(lt, ds, p)(o) == CUBLAS_STATUS_SUCCESS;
}

bool lt_matmul(const LtProblem& p, LtChoice choice) {
  const CublasLt& lt = cublas_lt();
  if (!lt.loaded) return false;
  const Descriptors ds(lt, p);
  const Launch launch = launcher(lt, ds, p);
  const std::size_t workspace_bytes = launch.workspace_bytes;
  const bool memset_free = lt_memset_free_requested();
  const Key key{c10::cuda::current_device(),
                p.transpose_a,
                p.transpose_b,
                p.m,
                p.n,
                p.k,
                p.lda,
                p.ldb,
                p.ldd,
                static_cast<std::int64_t>(p.type),
                static_cast<std::int64_t>(p.epilogue),
                static_cast<std::int64_t>(p.bias_type),
                alignment_of(p.a),
                alignment_of(p.b),
                alignment_of(p.d),
                alignment_of(p.bias),
                alignment_of(p.aux),
                p.ldaux,
                static_cast<std::int64_t>(workspace_bytes),
                static_cast<std::int64_t>(choice),
                memset_free};
  Choice chosen;
  {
    const std::lock_guard<std::mutex> lock(choices_mutex);
    const auto it = choices.find(key);
    if (it != choices.end()) {
      chosen = it->second;
    } else {
      const int most = choice == LtChoice::kHeuristic ? 1 : 8;
      const auto algos = memset_free ? offered_memset_free(lt, launch.handle, ds, p, most, workspace_bytes)
                                     : offered(lt, launch.handle, ds, p, most, workspace_bytes);
      if (choice != LtChoice::kHeuristic && algos.size() > 1) {
        chosen = fastest(candidates(algos, launch, choice == LtChoice::kTimedExact), launch);
      } else if (!algos.empty()) {
        chosen.found = true;
        chosen.offer = algos.front();
      }
      choices.emplace(key, chosen);
    }
  }
  if (!chosen.found) return false;
  check(launch(chosen.offer), "matmul");
  return true;
}

}  // namespace deepspeed::ops::detail
#endif  // DS_WITH_CUBLASLT
