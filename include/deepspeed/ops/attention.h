#pragma once
/// \file
/// Which kernel at::scaled_dot_product_attention runs on CUDA. LibTorch 2.11 tries flash attention first,
/// then memory-efficient attention, then the math path; cuDNN's attention is built in but ranked after them.
/// Which is fastest depends on the card and the shapes (docs/kernels.md has the H200 measurements at GPT-2's
/// shapes), so the choice is a switch:
///
///   deepspeed::ops::set_attention_backend(deepspeed::ops::parse_attention_backend("cudnn"));
///
/// or the environment: DS_ATTENTION_BACKEND=auto|flash|fa3|cudnn|efficient|math, applied by
/// apply_attention_backend_from_env() (the GPT-2 example calls it at start-up; its --attention flag wins).
/// A chosen backend is tried first; LibTorch falls back to the next one in its order for inputs the chosen
/// kernel does not support (so a choice never makes a model fail). Process-wide; set it before training.

#include <string>
#include <string_view>

namespace deepspeed::ops {

enum class AttentionBackend { kAuto, kFlash, kFlash3, kCudnn, kEfficient, kMath };

/// "auto", "flash", "fa3" (flash attention 3, Hopper, where LibTorch was built with it), "cudnn", "efficient",
/// "math" → the backend. Throws UsageError naming `what` (the flag or
/// variable the text came from) and the accepted values otherwise.
AttentionBackend parse_attention_backend(std::string_view text, std::string_view what = "attention backend");
std::string attention_backend_name(AttentionBackend backend);

/// Puts `backend` first in LibTorch's SDPA priority order (kAuto restores LibTorch's default order).
void set_attention_backend(AttentionBackend backend);
/// The backend last set through this header (kAuto until then).
AttentionBackend attention_backend();

/// Applies DS_ATTENTION_BACKEND when set (UsageError naming it on a bad value); returns what is in effect.
AttentionBackend apply_attention_backend_from_env();

}  // namespace deepspeed::ops
