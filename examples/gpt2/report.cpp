#include "examples/gpt2/report.h"

#include <sys/resource.h>

#include <algorithm>
#include <cstdio>

#include "deepspeed/engine/timers.h"

namespace deepspeed::examples::gpt2 {

double peak_host_gib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / (1 << 20);  // kilobytes → GiB (this process's RSS)
}

namespace {
std::int64_t phases_peak = 0;  // the largest peak MemoryPhases reset the allocator's count from
}  // namespace

double peak_memory_gib(c10::Device device) {
  if (device.is_cuda()) return static_cast<double>(std::max(phases_peak, engine::max_memory_allocated(device))) / (1 << 30);
  return peak_host_gib();
}

void MemoryPhases::close_phase() {
  if (open_ < 0) return;
  engine::synchronize_device(device_);
  const std::int64_t peak = engine::max_memory_allocated(device_);
  peaks_[open_] = std::max(peaks_[open_], peak);
  phases_peak = std::max(phases_peak, peak);
  open_ = -1;
}

void MemoryPhases::begin(int phase, std::int64_t step) {
  if (step >= steps_) return;
  close_phase();
  engine::synchronize_device(device_);
  engine::reset_max_memory_allocated(device_);
  open_ = phase;
}

void MemoryPhases::end_micro_step(std::int64_t step, bool boundary) {
  if (open_ < 0) return;
  close_phase();
  if (!boundary) return;
  const auto g = [](std::int64_t bytes) { return static_cast<double>(bytes) / (1 << 30); };
  std::printf("memory phases, step %lld: peak in forward %.2f GiB, backward %.2f GiB, step %.2f GiB; allocated "
              "after it %.2f GiB\n", static_cast<long long>(step), g(peaks_[0]), g(peaks_[1]), g(peaks_[2]),
              g(engine::memory_allocated(device_)));
  std::fflush(stdout);
  peaks_[0] = peaks_[1] = peaks_[2] = 0;
}

void print_step_line(std::int64_t step, std::int64_t max_steps, double loss, double lr, double tok_per_s,
                     double ms_per_step, double flops_per_token, int world, c10::Device device) {
  char mfu_text[32] = "n/a";
  if (device.is_cuda()) std::snprintf(mfu_text, sizeof mfu_text, "%.1f%%", 100.0 * mfu(flops_per_token, tok_per_s, world));
  // On a GPU the host's peak is shown too: ZeRO-Offload keeps the optimizer there.
  char host_text[48] = "";
  if (device.is_cuda()) std::snprintf(host_text, sizeof host_text, " | host peak %.2f GiB", peak_host_gib());
  std::printf("step %lld/%lld | loss %.4f | lr %.4e | %.0f tok/s | MFU %s | %.1f ms/step | peak mem %.2f GiB%s\n",
              static_cast<long long>(step), static_cast<long long>(max_steps), loss, lr, tok_per_s, mfu_text,
              ms_per_step, peak_memory_gib(device), host_text);
  std::fflush(stdout);
}

nlohmann::json summary_json(const RunSummary& s) {
  const double tok_per_s = s.seconds > 0 ? s.tokens / s.seconds : 0;
  const std::int64_t global_batch = s.micro_batch * s.grad_accum * s.world_size;
  const double peak_max = s.peak_mem_gib.empty() ? 0.0 : *std::max_element(s.peak_mem_gib.begin(), s.peak_mem_gib.end());
  return {{"bench", "gpt2"}, {"impl", s.impl}, {"model", s.model}, {"n_layer", s.config.n_layer},
          {"n_embd", s.config.n_embd}, {"n_head", s.config.n_head}, {"vocab", s.config.vocab_size},
          {"n_params", num_parameters(s.config)}, {"world_size", s.world_size}, {"zero_stage", s.zero_stage},
          {"micro_batch", s.micro_batch}, {"grad_accum", s.grad_accum}, {"global_batch", global_batch},
          {"seq_len", s.seq_len}, {"tokens_per_step", global_batch * s.seq_len}, {"warmup_steps", s.warmup_steps},
          {"timed_steps", s.timed_steps},
          {"step_ms", s.timed_steps > 0 ? 1e3 * s.seconds / static_cast<double>(s.timed_steps) : 0.0},
          {"tok_per_s", tok_per_s}, {"tok_per_s_per_gpu", tok_per_s / s.world_size},
          {"flops_per_token", s.flops_per_token},
          {"mfu", s.cuda ? nlohmann::json(mfu(s.flops_per_token, tok_per_s, s.world_size)) : nlohmann::json(nullptr)},
          {"peak_mem_gib", s.peak_mem_gib}, {"peak_mem_gib_max", peak_max},
          {"peak_host_gib", s.cuda ? nlohmann::json(peak_host_gib()) : nlohmann::json(nullptr)}, {"loss_first", s.loss_first},
          {"loss_last", s.loss_last}, {"activation_checkpointing", s.config.activation_checkpointing},
          {"precision", s.precision}};
}

}  // namespace deepspeed::examples::gpt2
