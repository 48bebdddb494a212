// optim::device_squared_sum against the host sum ZeRO-Offload used to take after landing: bit for bit, in every
// dtype the gradients land in, at the lengths where the runs, lane groups and blocks of the order end.
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

TEST(DeviceSquaredSum, RejectsHostTensors) {
  if (!optim::device_squared_sum_available()) GTEST_SKIP() << "no CUDA kernels in this build";
  EXPECT_THROW(optim::device_squared_sum(at::ones({4})), std::invalid_argument);
}

}  // namespace
}  // namespace deepspeed
