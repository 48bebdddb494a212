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

/// This process's peak memory in GiB: the CUDA caching allocator's max allocated on a GPU (MemoryPhases
/// included), the RSS on the CPU.
double peak_memory_gib(c10::Device device);

/// --memory-phases: where the device peak is. Over the first `steps` optimizer steps each phase of a
/// micro-step (forward with the loss, backward, the engine's step) starts the allocator's peak over, and each
/// boundary prints the largest peak of every phase in that step and what stays allocated after it. The
/// whole run's peak (peak_memory_gib) keeps what the phases saw. Rank 0 only; a no-op off CUDA.
class MemoryPhases {
 public:
  MemoryPhases(c10::Device device, std::int64_t steps) : device_(device), steps_(device.is_cuda() ? steps : 0) {}
  /// Call before each phase with its index (0 forward, 1 backward, 2 step) and the optimizer step it is in.
  void begin(int phase, std::int64_t step);
  /// After the step phase: prints the line when `boundary`.
  void end_micro_step(std::int64_t step, bool boundary);

 private:
  void close_phase();
  c10::Device device_;
  std::int64_t steps_;
  int open_ = -1;
  std::int64_t peaks_[3] = {0, 0, 0};
};

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
