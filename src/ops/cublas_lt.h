#pragma once
// Internal to deepspeed::ops (lt_matmul.cpp): cuBLASLt's entry points, taken at run time from the copy
// LibTorch already loaded (dlopen with RTLD_NOLOAD) rather than linked: a copy of our own could map a library of
// another version under the same soname in LibTorch's place. Only built where cuBLASLt's header was found
// (DS_WITH_CUBLASLT, src/torch_libraries.cmake).
#include <cstdint>

#include <c10/core/ScalarType.h>
#include <cublasLt.h>

namespace deepspeed::ops::detail {

struct CublasLt {
  decltype(&cublasLtMatmulDescCreate) desc_create = nullptr;
  decltype(&cublasLtMatmulDescDestroy) desc_destroy = nullptr;
  decltype(&cublasLtMatmulDescSetAttribute) desc_set = nullptr;
  decltype(&cublasLtMatrixLayoutCreate) layout_create = nullptr;
  decltype(&cublasLtMatrixLayoutDestroy) layout_destroy = nullptr;
  decltype(&cublasLtMatmulPreferenceCreate) preference_create = nullptr;
  decltype(&cublasLtMatmulPreferenceDestroy) preference_destroy = nullptr;
  decltype(&cublasLtMatmulPreferenceSetAttribute) preference_set = nullptr;
  decltype(&cublasLtMatmulAlgoGetHeuristic) heuristic = nullptr;
  decltype(&cublasLtMatmul) matmul = nullptr;
  bool loaded = false;  ///< every entry point found
};

/// The entry points (looked up once; `loaded` false when the process has no cuBLASLt of the header's major
/// version mapped, libcublasLt.so.CUBLAS_VER_MAJOR).
const CublasLt& cublas_lt();

/// Throws JobError "`who`: cuBLASLt `what` failed (status N)" unless `status` is success.
void check_lt(cublasStatus_t status, const char* who, const char* what);

/// CUDA_R_16BF, CUDA_R_16F, else CUDA_R_32F.
cudaDataType_t cuda_data_type(at::ScalarType type);

/// The largest power of two, up to 256, that divides the address: cuBLASLt's heuristic assumes 256-byte
/// aligned buffers unless told otherwise, and an algorithm chosen for more alignment than a buffer has may fault.
std::uint32_t alignment_of(const void* p);

/// A cuBLASLt descriptor destroyed with its scope.
template <typename T>
struct LtOwned {
  T handle = nullptr;
  cublasStatus_t (*destroy)(T) = nullptr;
  explicit LtOwned(cublasStatus_t (*d)(T)) : destroy(d) {}
  LtOwned(const LtOwned&) = delete;
  LtOwned& operator=(const LtOwned&) = delete;
  ~LtOwned() {
    if (handle != nullptr) destroy(handle);
  }
};

}  // namespace deepspeed::ops::detail
