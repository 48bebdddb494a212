#pragma once
// Shared by the GPU benches of single kernels (gemm_bench, gemm_launch_probe, ops_bench): the GPT-2 suite's model
// sizes with their micro-batches, their linear layers, the --models list parsed against them, and a CUDA-event
// timer.
#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAStream.h>

namespace deepspeed::bench {

/// A GPT-2 size as the suite runs it: width, blocks, and the micro-batch at sequence length 1024.
struct Gpt2Shape {
  std::string name;
  std::int64_t n_embd, n_layer, micro;
};

inline const std::vector<Gpt2Shape>& gpt2_shapes() {
  static const std::vector<Gpt2Shape> all = {{"124M", 768, 12, 32}, {"350M", 1024, 24, 16}, {"1.5B", 1600, 48, 8}};
  return all;
}

/// The sizes named in `list` (space-separated), in order; nullopt after printing "<tool>: --models: unknown
/// size …" with the sizes it knows to stderr, for the caller to exit 2.
inline std::optional<std::vector<Gpt2Shape>> parse_gpt2_shapes(const std::string& list, const char* tool) {
  std::vector<Gpt2Shape> out;
  std::istringstream wanted(list);
  for (std::string name; wanted >> name;) {
    const Gpt2Shape* found = nullptr;
    for (const auto& m : gpt2_shapes()) found = m.name == name ? &m : found;
    if (found == nullptr) {
      std::fprintf(stderr, "%s: --models: unknown size '%s' (expected 124M, 350M or 1.5B)\n", tool, name.c_str());
      return std::nullopt;
    }
    out.push_back(*found);
  }
  return out;
}

/// One linear layer of a GPT-2 step as ops::linear runs it: [rows, in] → [rows, out], `per_step` of them, with its
/// bias in the GEMM (and its gradient beside dW) where `biased`: c_fc's bias goes to ops::bias_gelu, the LM head
/// has none.
struct Gpt2Linear {
  std::string name;
  std::int64_t in, out, per_step;
  bool biased;
};

/// The model's linear layers: a block's four, then the LM head (vocabulary padded to 50304).
inline std::vector<Gpt2Linear> gpt2_linears(const Gpt2Shape& m) {
  const std::int64_t c = m.n_embd;
  return {{"c_attn", c, 3 * c, m.n_layer, true},
          {"attn.c_proj", c, c, m.n_layer, true},
          {"c_fc", c, 4 * c, m.n_layer, false},
          {"mlp.c_proj", 4 * c, c, m.n_layer, true},
          {"lm_head", c, 50304, 1, false}};
}

/// Mean device time of fn in ms over `iters` calls on the current stream, after three untimed calls.
inline double time_ms(const std::function<void()>& fn, int iters) {
  for (int i = 0; i < 3; ++i) fn();
  at::cuda::CUDAEvent start(cudaEventDefault), stop(cudaEventDefault);
  const auto stream = c10::cuda::getCurrentCUDAStream();
  start.record(stream);
  for (int i = 0; i < iters; ++i) fn();
  stop.record(stream);
  stop.synchronize();
  return start.elapsed_time(stop) / iters;
}

}  // namespace deepspeed::bench
