#include "src/ops/linear_epilogue.h"

#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

#ifdef DS_WITH_CUBLASLT
#include <ATen/cuda/CUDAContextLight.h>
#include <c10/cuda/CUDAStream.h>

#include "src/ops/cublas_lt.h"
#endif

#include "deepspeed/util/error.h"

namespace deepspeed::ops::detail {

bool linear_epilogue_requested() {
#ifdef DS_WITH_CUBLASLT
  const char* v = std::getenv("DS_LINEAR_EPILOGUE");
  return v != nullptr && std::string(v) == "1";
#else
  return false;
#endif
}

#ifdef DS_WITH_CUBLASLT
namespace {

void check(cublasStatus_t status, const char* what) { check_lt(status, "deepspeed::ops::linear", what); }

// The heuristic's pick per problem: it costs far more host time than the GEMM's launch, and the same shapes
// come back every step.
// (device, m, n, k, type, alignment of A, B, C and the bias, bias type, workspace bytes: an algorithm chosen
// for a larger workspace than the call can pass would fail)
using Key = std::tuple<int, std::int64_t, std::int64_t, std::int64_t, int, std::uint32_t, std::uint32_t, std::uint32_t,
                       std::uint32_t, int, std::size_t>;
struct Choice {
  bool found = false;
  cublasLtMatmulAlgo_t algo{};
};
std::mutex choices_mutex;
std::map<Key, Choice> choices;

}  // namespace

bool weight_and_bias_grad(const at::Tensor& dy, const at::Tensor& x, at::Tensor& dweight, at::Tensor& dbias) {
  // Column-major, as cuBLASLt counts: x [M, K] row-major is X (K × M, ld K), dy [M, N] is D (N × M, ld N), and
  // dweight [N, K] is W (K × N, ld K) = X · Dᵀ: m = K, n = N, k = M. BGRADB sums op(B) = Dᵀ (M × N) over k,
  // one value per column of the result: dbias [N].
  const CublasLt& lt = cublas_lt();
  if (!lt.loaded) return false;
  const std::int64_t m = x.size(1), n = dy.size(1), k = dy.size(0);
  const cudaDataType_t type = cuda_data_type(dy.scalar_type());
  const cublasLtHandle_t handle = at::cuda::getCurrentCUDABlasLtHandle();
  const std::size_t workspace_bytes = at::cuda::getCUDABlasLtWorkspaceSize();
  void* workspace = at::cuda::getCUDABlasLtWorkspace();

  LtOwned<cublasLtMatmulDesc_t> desc(lt.desc_destroy);
  check(lt.desc_create(&desc.handle, CUBLAS_COMPUTE_32F, CUDA_R_32F), "descriptor");
  const cublasOperation_t no = CUBLAS_OP_N, transposed = CUBLAS_OP_T;
  check(lt.desc_set(desc.handle, CUBLASLT_MATMUL_DESC_TRANSA, &no, sizeof no), "TRANSA");
  check(lt.desc_set(desc.handle, CUBLASLT_MATMUL_DESC_TRANSB, &transposed, sizeof transposed), "TRANSB");
  const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BGRADB;
  check(lt.desc_set(desc.handle, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue), "epilogue");
  void* bias = dbias.data_ptr();
  check(lt.desc_set(desc.handle, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias), "bias pointer");
  const cudaDataType_t bias_type = cuda_data_type(dbias.scalar_type());
  check(lt.desc_set(desc.handle, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof bias_type), "bias type");

  LtOwned<cublasLtMatrixLayout_t> a(lt.layout_destroy), b(lt.layout_destroy), c(lt.layout_destroy);
  check(lt.layout_create(&a.handle, type, m, k, m), "layout of x");
  check(lt.layout_create(&b.handle, type, n, k, n), "layout of dy");
  check(lt.layout_create(&c.handle, type, m, n, m), "layout of dweight");

  const std::uint32_t align_a = alignment_of(x.data_ptr()), align_b = alignment_of(dy.data_ptr()),
                      align_c = alignment_of(dweight.data_ptr());
  const Key key{static_cast<int>(dy.device().index()), m, n, k, static_cast<int>(type), align_a, align_b, align_c,
                alignment_of(bias), static_cast<int>(bias_type), workspace_bytes};
  Choice choice;
  {
    const std::lock_guard<std::mutex> lock(choices_mutex);
    const auto it = choices.find(key);
    if (it != choices.end()) {
      choice = it->second;
    } else {
      LtOwned<cublasLtMatmulPreference_t> preference(lt.preference_destroy);
      check(lt.preference_create(&preference.handle), "preference");
      const std::uint64_t bytes = workspace_bytes;
      check(lt.preference_set(preference.handle, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &bytes, sizeof bytes),
            "workspace preference");
      const std::pair<cublasLtMatmulPreferenceAttributes_t, std::uint32_t> alignments[] = {
          {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, align_a},
          {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, align_b},
          {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, align_c},
          {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, align_c}};
      for (const auto& [attribute, value] : alignments) {
        check(lt.preference_set(preference.handle, attribute, &value, sizeof value), "alignment preference");
      }
      // Split-K partial sums kept in fp32 (or none): the schemes that reduce in place or in the output type
      // would round the weight and bias gradients to 16 bits before their last additions.
      const std::uint32_t reductions = CUBLASLT_REDUCTION_SCHEME_NONE | CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
      check(lt.preference_set(preference.handle, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &reductions,
                              sizeof reductions),
            "reduction preference");
      cublasLtMatmulHeuristicResult_t result{};
      int count = 0;
      const cublasStatus_t status = lt.heuristic(handle, desc.handle, a.handle, b.handle, c.handle, c.handle,
                                                 preference.handle, 1, &result, &count);
      // No algorithm (or the problem not supported at all): the caller's own path, from now on for this shape.
      choice.found = status == CUBLAS_STATUS_SUCCESS && count > 0;
      if (choice.found) choice.algo = result.algo;
      choices.emplace(key, choice);
    }
  }
  if (!choice.found) return false;
  const float one = 1.0f, zero = 0.0f;
  check(lt.matmul(handle, desc.handle, &one, x.data_ptr(), a.handle, dy.data_ptr(), b.handle, &zero, dweight.data_ptr(),
                  c.handle, dweight.data_ptr(), c.handle, &choice.algo, workspace, workspace_bytes,
                  c10::cuda::getCurrentCUDAStream().stream()),
        "matmul");
  return true;
}
#else
bool weight_and_bias_grad(const at::Tensor&, const at::Tensor&, at::Tensor&, at::Tensor&) { return false; }
#endif

}  // namespace deepspeed::ops::detail
