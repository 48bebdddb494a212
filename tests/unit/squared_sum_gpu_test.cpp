// optim::device_squared_sum against the host sum ZeRO-Offload used to take after landing: bit for bit, in every
// dtype the gradients land in, at the lengths where the runs, lane groups and blocks of the order end.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "deepspeed/optim/clip.h"

namespace deepspeed {
namespace {

TEST(DeviceSquaredSum, EqualsTheHostSumBitwise) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  ASSERT_TRUE(optim::device_squared_sum_available());
  at::manual_seed(3);
  const std::vector<std::int64_t> lengths = {0,     1,     7,     8,     9,         1023,          1024,
                                             1025,  65535, 65536, 65537, 3 * 65536 + 777, 40'000'017};
  for (const auto dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
    for (const std::int64_t n : lengths) {
      // Magnitudes over several decades, so that fp32 rounding inside a lane shows if the order differs.
      const at::Tensor host = (at::randn({n}) * at::exp(at::randn({n}) * 3)).clamp(-6e4, 6e4).to(dtype);
      const double expected = optim::squared_l2_norm({host});
      const double got = optim::device_squared_sum(host.to(at::kCUDA)).item<double>();
      EXPECT_EQ(got, expected) << c10::toString(dtype) << " n=" << n;
    }
  }
}

// The gradient norm's device path (per-tensor fp32 norms through LibTorch's multi-tensor kernel, squared and
// summed in fp64) over a per-parameter list of mixed dtypes, against an fp64 sum: fp32 accumulation, ~1e-6.
TEST(DeviceSquaredSum, NormOfAParameterListOnTheDevice) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  at::manual_seed(4);
  std::vector<at::Tensor> grads;
  double expected = 0.0;
  for (int i = 0; i < 300; ++i) {
    const auto dtype = i % 3 == 0 ? at::kFloat : at::kBFloat16;
    const at::Tensor g = at::randn({1 + 37 * i}).to(dtype);
    expected += g.to(at::kDouble).square().sum().item<double>();
    grads.push_back(g.to(at::kCUDA));
  }
  const at::Tensor squared = optim::squared_l2_norm_tensor(grads);
  EXPECT_TRUE(squared.is_cuda());
  EXPECT_EQ(squared.scalar_type(), at::kDouble);
  EXPECT_NEAR(squared.item<double>(), expected, 1e-6 * expected);
  EXPECT_EQ(optim::squared_l2_norm(grads), squared.item<double>());
  // The clipping factor is computed beside it, equal to the host arithmetic on the same sum.
  const double host = std::min(1.0, 1.0 / (std::sqrt(squared.item<double>()) + 1e-6));
  EXPECT_EQ(optim::gradient_factor(squared, 1.0).item<double>(), host);
}

TEST(DeviceSquaredSum, RejectsHostTensors) {
  if (!optim::device_squared_sum_available()) GTEST_SKIP() << "no CUDA kernels in this build";
  EXPECT_THROW(optim::device_squared_sum(at::ones({4})), std::invalid_argument);
}

}  // namespace
}  // namespace deepspeed
