// Compiled out where cuBLASLt's header was not found (nothing includes it then).
#ifdef DS_WITH_CUBLASLT
#include "src/ops/cublas_lt.h"

#include <dlfcn.h>

#include <string>
#include <type_traits>

#include "deepspeed/util/error.h"

namespace deepspeed::ops::detail {

const CublasLt& cublas_lt() {
  static const CublasLt lt = [] {
    CublasLt l;
    // Only the major version this was compiled against (its header's): another one's structures may differ.
    const std::string soname = "libcublasLt.so." + std::to_string(CUBLAS_VER_MAJOR);
    void* library = dlopen(soname.c_str(), RTLD_NOW | RTLD_NOLOAD);
    if (library == nullptr) return l;
    const auto take = [&](auto& fn, const char* symbol) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(library, symbol));
      return fn != nullptr;
    };
    l.loaded = take(l.desc_create, "cublasLtMatmulDescCreate") && take(l.desc_destroy, "cublasLtMatmulDescDestroy") &&
               take(l.desc_set, "cublasLtMatmulDescSetAttribute") &&
               take(l.layout_create, "cublasLtMatrixLayoutCreate") &&
               take(l.layout_destroy, "cublasLtMatrixLayoutDestroy") &&
               take(l.preference_create, "cublasLtMatmulPreferenceCreate") &&
               take(l.preference_destroy, "cublasLtMatmulPreferenceDestroy") &&
               take(l.preference_set, "cublasLtMatmulPreferenceSetAttribute") &&
               take(l.heuristic, "cublasLtMatmulAlgoGetHeuristic") && take(l.matmul, "cublasLtMatmul");
    return l;
  }();
  return lt;
}

void check_lt(cublasStatus_t status, const char* who, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS) {
    throw JobError(std::string(who) + ": cuBLASLt " + what + " failed (status " +
                   std::to_string(static_cast<int>(status)) + ")");
  }
}

cudaDataType_t cuda_data_type(at::ScalarType type) {
  switch (type) {
    case at::kBFloat16: return CUDA_R_16BF;
    case at::kHalf: return CUDA_R_16F;
    default: return CUDA_R_32F;
  }
}

std::uint32_t alignment_of(const void* p) {
  const auto address = reinterpret_cast<std::uintptr_t>(p);
  std::uint32_t a = 256;
  while (a > 1 && address % a != 0) a /= 2;
  return a;
}

}  // namespace deepspeed::ops::detail
#endif  // DS_WITH_CUBLASLT
