// The 16-bit gradient hand-over into an fp32 accumulation slot (src/zero/grad_convert_kernel.cu) against
// LibTorch's copy_/add_: bit for bit, both 16-bit types, lengths around its 8-element groups, misaligned slots.
#include <cstdint>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "src/zero/grad_convert.h"

namespace deepspeed {
namespace {

TEST(GradientHandOver, EqualsLibTorchsCopyAndAddBitwise) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  const c10::Device cuda(c10::kCUDA, 0);
  at::manual_seed(5);
  for (const auto dtype : {at::kBFloat16, at::kHalf}) {
    for (const std::int64_t n : {0, 1, 7, 8, 9, 1000, 16'387, 3'000'001}) {
      for (const std::int64_t offset : {0, 1, 16}) {  // 1: neither 16-byte aligned, so element by element
        const at::Tensor grad = at::randn({n + offset}, at::TensorOptions().device(cuda)).to(dtype).narrow(0, offset, n);
        const at::Tensor start = at::randn({n + offset}, at::TensorOptions().device(cuda));
        at::Tensor ours = start.clone(), theirs = start.clone();
        zero::hand_over_gradient(ours.narrow(0, offset, n), grad, /*accumulate=*/false);
        theirs.narrow(0, offset, n).copy_(grad);
        EXPECT_TRUE(at::equal(ours, theirs)) << "copy " << c10::toString(dtype) << " n=" << n << " offset=" << offset;
        zero::hand_over_gradient(ours.narrow(0, offset, n), grad, /*accumulate=*/true);
        theirs.narrow(0, offset, n).add_(grad);
        EXPECT_TRUE(at::equal(ours, theirs)) << "add " << c10::toString(dtype) << " n=" << n << " offset=" << offset;
      }
    }
  }
}

}  // namespace
}  // namespace deepspeed
