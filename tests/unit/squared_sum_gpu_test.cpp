// optim::device_squared_sum against the host sum ZeRO-Offload used to take after landing: bit for bit, in every
// dtype the gradients land in, at the lengths where the runs, lane groups and blocks of the order end.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
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

// The gradient norm's reference device path (DS_REFERENCE_GRAD_NORM=1: per-tensor fp32 norms through LibTorch's
// multi-tensor kernel, squared and summed in fp64) over a per-parameter list of mixed dtypes, against an fp64
// sum: fp32 accumulation, ~1e-6.
TEST(DeviceSquaredSum, NormOfAParameterListOnTheDevice) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  struct Reference {  // unset however the test ends
    Reference() { setenv("DS_REFERENCE_GRAD_NORM", "1", 1); }
    ~Reference() { unsetenv("DS_REFERENCE_GRAD_NORM"); }
  } reference;
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

// The default: the gradient norm's sum in one kernel pass over the list (multi_tensor_norm_kernel.cu), against an
// fp64 sum and the _foreach_norm reference (DS_REFERENCE_GRAD_NORM=1), over every dtype, lengths at and around
// the 16,384-value chunks and the 16-byte packs, empty tensors, views that start off a 16-byte boundary (element
// loads), and a 40M-value tensor (many chunks per block). Each thread sums at most 64 squares in fp32 before
// fp64: ~1e-7.
// Run to run it is the same bit for bit; ∞ and NaN reach the sum.
TEST(DeviceSquaredSum, OnePassKernelOverAMixedList) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  at::manual_seed(5);
  std::vector<at::Tensor> grads;
  double expected = 0.0;
  const std::vector<std::int64_t> lengths = {0, 1, 7, 8, 9, 16383, 16384, 16385, 3 * 16384 + 5, 1 << 20, 40'000'017};
  int i = 0;
  for (const auto dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
    for (const std::int64_t n : lengths) {
      const at::Tensor host = (at::randn({n + 1}) * at::exp(at::randn({n + 1}))).clamp(-6e4, 6e4).to(dtype);
      // Every other tensor a view one element in: its data is off the 16-byte boundary.
      const at::Tensor g = (i++ % 2 ? host.to(at::kCUDA).narrow(0, 1, n) : host.narrow(0, 0, n).to(at::kCUDA));
      expected += g.cpu().to(at::kDouble).square().sum().item<double>();
      grads.push_back(g);
    }
  }
  const at::Tensor squared = optim::squared_l2_norm_tensor(grads);
  const double again = optim::squared_l2_norm_tensor(grads).item<double>();
  setenv("DS_REFERENCE_GRAD_NORM", "1", 1);
  const double reference = optim::squared_l2_norm_tensor(grads).item<double>();
  unsetenv("DS_REFERENCE_GRAD_NORM");
  EXPECT_TRUE(squared.is_cuda());
  EXPECT_EQ(squared.scalar_type(), at::kDouble);
  const double got = squared.item<double>();
  std::printf("[grad_norm_kernel] relative error %.3g (reference %.3g)\n", std::abs(got - expected) / expected,
              std::abs(reference - expected) / expected);
  EXPECT_NEAR(got, expected, 1e-6 * expected);
  EXPECT_EQ(got, again);
  EXPECT_NEAR(got, reference, 2e-6 * expected);

  EXPECT_EQ(optim::squared_l2_norm_tensor({}).item<double>(), 0.0);
  EXPECT_EQ(optim::squared_l2_norm_tensor({at::empty({0}, at::kCUDA)}).item<double>(), 0.0);
  auto with_inf = grads;
  with_inf.push_back(at::full({3}, INFINITY, at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16)));
  EXPECT_TRUE(std::isinf(optim::squared_l2_norm_tensor(with_inf).item<double>()));
  auto with_nan = grads;
  with_nan.back() = with_nan.back().clone();
  with_nan.back().view({-1})[5] = NAN;
  EXPECT_TRUE(std::isnan(optim::squared_l2_norm_tensor(with_nan).item<double>()));
}

TEST(DeviceSquaredSum, RejectsHostTensors) {
  if (!optim::device_squared_sum_available()) GTEST_SKIP() << "no CUDA kernels in this build";
  EXPECT_THROW(optim::device_squared_sum(at::ones({4})), std::invalid_argument);
}

}  // namespace
}  // namespace deepspeed
