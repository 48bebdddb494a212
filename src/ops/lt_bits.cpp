// Compiled out where cuBLASLt's header was not found (nothing calls it then).
#ifdef DS_WITH_CUBLASLT
#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>

#include "src/ops/bits_hash_kernel.h"
#include "src/ops/launch_support.h"
#include "src/ops/lt_matmul.h"

namespace deepspeed::ops::detail {
namespace {

std::int64_t words_of(at::ScalarType type, std::int64_t elements) {
  return elements * static_cast<std::int64_t>(c10::elementSize(type)) / 2;
}

}  // namespace

LtBits lt_output_bits(const LtProblem& p) {
  at::Tensor out = at::zeros({2}, at::TensorOptions().device(at::kCUDA).dtype(at::kLong));
  auto* sums = reinterpret_cast<unsigned long long*>(out.data_ptr<std::int64_t>());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  const auto hash = [&](const void* base, at::ScalarType type, std::int64_t rows, std::int64_t columns,
                        std::int64_t ld, std::uint64_t salt) {
    check_launch(launch_bits_hash(base, words_of(type, rows), columns, words_of(type, ld), salt, sums, stream),
                 "GEMM output hash");
  };
  hash(p.d, p.type, p.m, p.n, p.ldd, 1);
  switch (p.epilogue) {
    case LtProblem::Epilogue::kBiasGradB: hash(p.bias, p.bias_type, p.n, 1, p.n, 2); break;
    case LtProblem::Epilogue::kDGeluBGrad: hash(p.bias, p.bias_type, p.m, 1, p.m, 2); break;
    case LtProblem::Epilogue::kGeluAuxBias: hash(p.aux, p.type, p.m, p.n, p.ldaux, 3); break;
    case LtProblem::Epilogue::kNone:
    case LtProblem::Epilogue::kDGelu:  // GELU's input only read
    case LtProblem::Epilogue::kBias: break;  // the bias only read
  }
  const at::Tensor host = out.cpu();
  LtBits bits;
  bits.hash = static_cast<std::uint64_t>(host.data_ptr<std::int64_t>()[0]);
  bits.varied = host.data_ptr<std::int64_t>()[1] != 0;
  return bits;
}

}  // namespace deepspeed::ops::detail
#endif  // DS_WITH_CUBLASLT
