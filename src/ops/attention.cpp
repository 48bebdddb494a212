#include "deepspeed/ops/attention.h"

#include <cstdlib>
#include <vector>

#include <ATen/Context.h>

#include "deepspeed/util/error.h"
#include "deepspeed/util/strings.h"

namespace deepspeed::ops {

namespace {

AttentionBackend g_backend = AttentionBackend::kAuto;

// LibTorch 2.11's default order (ATen/Context.h), as SDPBackend values.
std::vector<std::int64_t> default_order() {
  return {static_cast<std::int64_t>(at::SDPBackend::flash_attention),
          static_cast<std::int64_t>(at::SDPBackend::efficient_attention),
          static_cast<std::int64_t>(at::SDPBackend::math), static_cast<std::int64_t>(at::SDPBackend::cudnn_attention),
          static_cast<std::int64_t>(at::SDPBackend::overrideable)};
}

at::SDPBackend to_sdp(AttentionBackend b) {
  switch (b) {
    case AttentionBackend::kFlash:
    case AttentionBackend::kFlash3: return at::SDPBackend::flash_attention;
    case AttentionBackend::kCudnn: return at::SDPBackend::cudnn_attention;
    case AttentionBackend::kEfficient: return at::SDPBackend::efficient_attention;
    case AttentionBackend::kMath: return at::SDPBackend::math;
    case AttentionBackend::kAuto: break;
  }
  return at::SDPBackend::error;
}

}  // namespace

AttentionBackend parse_attention_backend(std::string_view text, std::string_view what) {
  if (text == "auto") return AttentionBackend::kAuto;
  if (text == "flash") return AttentionBackend::kFlash;
  if (text == "fa3") return AttentionBackend::kFlash3;
  if (text == "cudnn") return AttentionBackend::kCudnn;
  if (text == "efficient") return AttentionBackend::kEfficient;
  if (text == "math") return AttentionBackend::kMath;
  throw UsageError(util::cat(what, ": unknown attention backend \"", text,
                             "\"; expected auto, flash, fa3, cudnn, efficient or math"));
}

std::string attention_backend_name(AttentionBackend backend) {
  switch (backend) {
    case AttentionBackend::kAuto: return "auto";
    case AttentionBackend::kFlash: return "flash";
    case AttentionBackend::kFlash3: return "fa3";
    case AttentionBackend::kCudnn: return "cudnn";
    case AttentionBackend::kEfficient: return "efficient";
    case AttentionBackend::kMath: return "math";
  }
  return "auto";
}

void set_attention_backend(AttentionBackend backend) {
  auto& context = at::globalContext();
  std::vector<std::int64_t> order = default_order();
  if (backend != AttentionBackend::kAuto) {
    const auto first = static_cast<std::int64_t>(to_sdp(backend));
    std::erase(order, first);
    order.insert(order.begin(), first);
  }
  context.setSDPPriorityOrder(order);
  // Every kernel stays enabled: the order decides, and unsupported inputs fall through to the next one.
  context.setSDPUseFlash(true);
  context.setSDPUseMemEfficient(true);
  context.setSDPUseMath(true);
  context.setSDPUseCuDNN(true);
  // FA3 replaces FA2 inside the flash backend (off by default in LibTorch 2.11).
  context.setSDPUseFA3(backend == AttentionBackend::kFlash3);
  g_backend = backend;
}

AttentionBackend attention_backend() { return g_backend; }

AttentionBackend apply_attention_backend_from_env() {
  if (const char* value = std::getenv("DS_ATTENTION_BACKEND"); value && *value) {
    set_attention_backend(parse_attention_backend(value, "DS_ATTENTION_BACKEND"));
  }
  return g_backend;
}

}  // namespace deepspeed::ops
