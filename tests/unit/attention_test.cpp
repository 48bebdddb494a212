// The attention-backend switch: names, errors, and LibTorch's SDPA priority order it sets.
#include <gtest/gtest.h>

#include <cstdlib>

#include <ATen/Context.h>

#include "deepspeed/ops/attention.h"
#include "deepspeed/util/error.h"

namespace deepspeed::ops {
namespace {

TEST(AttentionBackend, NamesRoundTripAndBadValuesNameTheSource) {
  for (const char* name : {"auto", "flash", "fa3", "cudnn", "efficient", "math"}) {
    EXPECT_EQ(attention_backend_name(parse_attention_backend(name)), name);
  }
  try {
    parse_attention_backend("flash2", "--attention");
    FAIL() << "expected a UsageError";
  } catch (const UsageError& e) {
    EXPECT_STREQ(e.what(), "--attention: unknown attention backend \"flash2\"; expected auto, flash, fa3, cudnn, "
                           "efficient or math");
  }
}

TEST(AttentionBackend, ChosenBackendGoesFirstAndAutoRestoresLibTorchsOrder) {
  auto& context = at::globalContext();
  const auto original = context.sDPPriorityOrder();
  set_attention_backend(AttentionBackend::kCudnn);
  EXPECT_EQ(context.sDPPriorityOrder()[0], at::SDPBackend::cudnn_attention);
  EXPECT_EQ(context.sDPPriorityOrder()[1], at::SDPBackend::flash_attention);  // the rest keep their order
  EXPECT_TRUE(context.userEnabledFlashSDP());  // nothing disabled: unsupported inputs fall through
  EXPECT_FALSE(context.userEnabledFA3SDP());
  set_attention_backend(AttentionBackend::kFlash3);
  EXPECT_EQ(context.sDPPriorityOrder()[0], at::SDPBackend::flash_attention);
  EXPECT_TRUE(context.userEnabledFA3SDP());
  set_attention_backend(AttentionBackend::kAuto);
  EXPECT_EQ(context.sDPPriorityOrder(), original);
  EXPECT_FALSE(context.userEnabledFA3SDP());
  EXPECT_EQ(attention_backend(), AttentionBackend::kAuto);
}

TEST(AttentionBackend, EnvironmentVariable) {
  ::setenv("DS_ATTENTION_BACKEND", "efficient", 1);
  EXPECT_EQ(apply_attention_backend_from_env(), AttentionBackend::kEfficient);
  EXPECT_EQ(at::globalContext().sDPPriorityOrder()[0], at::SDPBackend::efficient_attention);
  ::setenv("DS_ATTENTION_BACKEND", "fast", 1);
  EXPECT_THROW(apply_attention_backend_from_env(), UsageError);
  ::unsetenv("DS_ATTENTION_BACKEND");
  set_attention_backend(AttentionBackend::kAuto);
}

}  // namespace
}  // namespace deepspeed::ops
