#pragma once
/// \file
/// What the GPT-2 example and the benchmark's hand-written loop (bench/gpt2_libtorch_loop.cpp) print, in one
/// place so that bench/run_gpt2_suite.sh reads both the same way: the periodic step line and the closing JSON
/// summary line.

#include <cstdint>
#include <string>
#include <vector>

#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include "examples/gpt2/gpt_config.h"

namespace deepspeed::examples::gpt2 {

/// This process's peak memory in GiB: the CUDA caching allocator's max allocated on a GPU, the RSS on the CPU.
double peak_memory_gib(c10::Device device);

/// Prints (and flushes) "step K/N | loss … | lr … | … tok/s | MFU …% | … ms/step | peak mem … GiB"; MFU is
/// "n/a" off CUDA. `tok_per_s` counts all `world` ranks.
void print_step_line(std::int64_t step, std::int64_t max_steps, double loss, double lr, double tok_per_s,
                     double ms_per_step, double flops_per_token, int world, c10::Device device);

/// The closing summary of a run, measured over its timed steps.
struct RunSummary {
  std::string impl;   ///< "deepspeed.cpp", "libtorch-loop", ...
  std::string model;  ///< the --model name
  GPTConfig config;
  std::int64_t seq_len = 0;
  int world_size = 1;
  int zero_stage = 0;
  std::int64_t micro_batch = 0, grad_accum = 1;
  std::int64_t warmup_steps = 0, timed_steps = 0;
  double tokens = 0;   ///< all ranks' tokens in the timed steps
  double seconds = 0;  ///< wall time of the timed steps
  double flops_per_token = 0;
  bool cuda = false;
  std::vector<double> peak_mem_gib;  ///< per rank
  double loss_first = 0, loss_last = 0;
  std::string precision = "bf16";
};

/// The suite's JSON line: the fields above plus the derived batch, throughput, step time and MFU.
nlohmann::json summary_json(const RunSummary& s);

}  // namespace deepspeed::examples::gpt2
