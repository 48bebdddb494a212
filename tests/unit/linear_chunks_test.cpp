// ops::linear_chunks off the GPU: at::linear's output in chunks, with its gradients (the reference path, which the
// GPU test holds the fused path to), the switch read at each call, and UsageErrors for bad arguments.
#include <cstdlib>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "deepspeed/ops/linear_chunks.h"
#include "deepspeed/util/error.h"

namespace deepspeed {
namespace {

TEST(LinearChunks, OnTheCpuAreAtLinearsChunksWithItsGradients) {
  torch::manual_seed(3);
  const at::Tensor x0 = torch::randn({2, 5, 8}), w0 = torch::randn({12, 8}), b0 = torch::randn({12});
  const at::Tensor dq = torch::randn({2, 5, 4}), dv = torch::randn({2, 5, 4});
  EXPECT_FALSE(ops::linear_chunks_is_fused(x0, w0, b0, 3));
  const auto grads = [&](bool ours) {
    at::Tensor x = x0.clone().requires_grad_(true), w = w0.clone().requires_grad_(true),
               b = b0.clone().requires_grad_(true);
    const auto qkv = ours ? ops::linear_chunks(x, w, b, 3) : at::linear(x, w, b).split(4, -1);
    EXPECT_EQ(qkv.size(), 3u);
    // k unused: its part of the output gradient is zeros.
    (qkv[0] * dq).sum().add((qkv[2] * dv).sum()).backward();
    return std::vector<at::Tensor>{qkv[0].detach(), qkv[1].detach(), qkv[2].detach(), x.grad(), w.grad(),
                                   b.grad()};
  };
  const auto ours = grads(true), ref = grads(false);
  for (std::size_t i = 0; i < ours.size(); ++i) EXPECT_TRUE(torch::allclose(ours[i], ref[i])) << i;
  EXPECT_TRUE(torch::equal(ours[4].narrow(0, 4, 4), torch::zeros({4, 8})));  // k's rows of dW
  EXPECT_TRUE(torch::equal(ours[5].narrow(0, 4, 4), torch::zeros({4})));
}

TEST(LinearChunks, ReferenceOnlyWhenForced) {
  unsetenv("DS_REFERENCE_LINEAR_CHUNKS");
  EXPECT_FALSE(ops::linear_chunks_reference_forced());
  setenv("DS_REFERENCE_LINEAR_CHUNKS", "0", 1);
  EXPECT_FALSE(ops::linear_chunks_reference_forced());
  setenv("DS_REFERENCE_LINEAR_CHUNKS", "1", 1);
  EXPECT_TRUE(ops::linear_chunks_reference_forced());
  unsetenv("DS_REFERENCE_LINEAR_CHUNKS");
}

TEST(LinearChunks, RejectsBadArguments) {
  const at::Tensor x = torch::randn({3, 8}), w = torch::randn({6, 8}), b = torch::randn({6});
  EXPECT_THROW(ops::linear_chunks(x, w, b, 4), UsageError);  // 4 does not divide 6
  EXPECT_THROW(ops::linear_chunks(x, w, b, 0), UsageError);
  EXPECT_THROW(ops::linear_chunks(x, torch::randn({6, 7}), b, 3), UsageError);
  EXPECT_THROW(ops::linear_chunks(x, w, torch::randn({5}), 3), UsageError);
  EXPECT_THROW(ops::linear_chunks(x, at::Tensor(), b, 3), UsageError);
  try {
    ops::linear_chunks(x, w, b, 4);
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("chunks must be a positive divisor of out (6), got 4"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(ops::linear_chunks(x, w, b, 1).size(), 1u);  // one chunk: the layer's output
}

}  // namespace
}  // namespace deepspeed
