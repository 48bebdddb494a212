// GPT-2 pre-training with deepspeed.cpp, after nanoGPT / llm.c:
//
//   deepspeed --num_gpus 8 ./build/examples/gpt2 --deepspeed_config examples/gpt2/ds_config_124M.json \
//       --data fineweb_train_000001.bin --max-steps 100
//   DS_ACCELERATOR=cpu deepspeed --num_gpus 2 ./build/examples/gpt2 \
//       --deepspeed_config examples/gpt2/ds_config_tiny_cpu.json --model tiny --max-steps 50
//
// --data takes an llm.c / nanoGPT token file (.bin) or any text file, read as bytes (vocabulary 256). Without
// it the example trains on a text file shipped by Debian (see data.h). Rank 0 logs, every --log-interval
// optimizer steps, the loss (mean over ranks and micro-batches), the global token rate, MFU against the H100's
// 989 TFLOP/s bf16 peak and peak memory.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>

#include <ATen/ATen.h>

#include "deepspeed/deepspeed.h"
#include "deepspeed/engine/activation_checkpointing.h"
#include "deepspeed/engine/timers.h"
#include "deepspeed/monitor/monitor.h"
#include "deepspeed/ops/attention.h"
#include "deepspeed/ops/qkv_attention.h"
#include "deepspeed/ops/cross_entropy.h"
#include "examples/gpt2/data.h"
#include "examples/gpt2/model.h"
#include "examples/gpt2/profile.h"
#include "examples/gpt2/report.h"

namespace gpt2 = deepspeed::examples::gpt2;

namespace {

struct Options {
  std::string model = "124M";
  std::string data;
  std::string data_format = "auto";
  std::string attention;  // "": DS_ATTENTION_BACKEND or LibTorch's default
  std::string linear = "ops";
  std::string sampling = "random";
  std::int64_t seq_len = 0;  // 0: the model's block_size
  std::int64_t max_steps = -1;
  std::int64_t warmup_steps = 0;  // steps excluded from the final summary's timing
  std::int64_t profile_steps = 0;  // rank 0 profiles steps (warmup_steps, warmup_steps + profile_steps]
  std::string profile_trace;
  int log_interval = 10;
  bool activation_checkpointing = false;
  std::int64_t memory_phases = 0;  // --memory-phases: steps whose phase peaks rank 0 prints
  std::optional<std::int64_t> n_layer, n_embd, n_head, vocab, block_size;
  double dropout = 0.0;
  std::uint64_t seed = 1337;
  int local_rank = -1;
};

gpt2::GPTConfig model_config(const Options& opt, const gpt2::TokenFile& tokens) {
  std::optional<gpt2::GPTConfig> c = gpt2::preset(opt.model);
  if (!c) throw deepspeed::UsageError("--model: unknown model \"" + opt.model + "\"");
  if (tokens.format() == gpt2::TokenFormat::kBytes) c->vocab_size = 256;
  if (opt.n_layer) c->n_layer = *opt.n_layer;
  if (opt.n_embd) c->n_embd = *opt.n_embd;
  if (opt.n_head) c->n_head = *opt.n_head;
  if (opt.vocab) c->vocab_size = *opt.vocab;
  if (opt.block_size) c->block_size = *opt.block_size;
  c->dropout = opt.dropout;
  c->activation_checkpointing = opt.activation_checkpointing;
  c->ops_linear = opt.linear == "ops";
  return *c;
}

// Weight decay on matrices (linear weights, embeddings) only, as nanoGPT and llm.c do: not on biases and
// LayerNorm parameters.
std::vector<deepspeed::optim::ParamGroup> param_groups(gpt2::GPT& model) {
  deepspeed::optim::ParamGroup decay, no_decay;
  no_decay.overrides.weight_decay = 0.0;
  for (auto& p : model->parameters()) (p.dim() >= 2 ? decay : no_decay).params.push_back(p);
  return {decay, no_decay};
}

// One JSON line on rank 0 for the benchmark suite (bench/run_gpt2_suite.sh): throughput over the timed steps,
// MFU, every rank's peak memory. Collective.
void print_summary(deepspeed::Engine& engine, const Options& opt, const gpt2::GPTConfig& cfg, std::int64_t seq_len,
                   double flops_per_token, double timed_tokens, double seconds, std::int64_t timed_steps,
                   double loss_first, double loss_last) {
  const auto device = engine.device();
  deepspeed::engine::synchronize_device(device);
  auto comm = engine.communicator();
  const int world = engine.world_size();
  const double tokens = comm->all_reduce_scalar(timed_tokens, deepspeed::comm::ReduceOp::kSum);
  at::Tensor mine = at::full({1}, gpt2::peak_memory_gib(device), at::TensorOptions().dtype(at::kDouble).device(device));
  at::Tensor all = at::zeros({world}, mine.options());
  comm->all_gather(all, mine).wait();
  const auto peaks = all.cpu();
  if (engine.global_rank() != 0) return;
  gpt2::RunSummary s;
  s.impl = deepspeed::ops::cross_entropy_reference_forced() ? "deepspeed.cpp (reference CE)" : "deepspeed.cpp";
  s.model = opt.model;
  s.config = cfg;
  s.seq_len = seq_len;
  s.world_size = world;
  s.zero_stage = engine.zero_optimization_stage();
  s.micro_batch = engine.train_micro_batch_size_per_gpu();
  s.grad_accum = engine.gradient_accumulation_steps();
  s.warmup_steps = opt.warmup_steps;
  s.timed_steps = timed_steps;
  s.tokens = tokens;
  s.seconds = seconds;
  s.flops_per_token = flops_per_token;
  s.cuda = device.is_cuda();
  s.peak_mem_gib.assign(peaks.data_ptr<double>(), peaks.data_ptr<double>() + world);
  s.loss_first = loss_first;
  s.loss_last = loss_last;
  s.precision = engine.bfloat16_enabled() ? "bf16" : engine.fp16_enabled() ? "fp16" : "fp32";
  std::printf("%s\n", gpt2::summary_json(s).dump().c_str());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"GPT-2"};
  Options opt;
  app.add_option("--model", opt.model, "124M (default), 350M, 774M, 1.5B, gpt2[-medium|-large|-xl], or tiny");
  app.add_option("--data", opt.data, "token file (.bin, llm.c or raw uint16) or text file (bytes); default: " +
                                         gpt2::default_text_file());
  app.add_option("--data-format", opt.data_format, "auto (default), llmc, uint16 or bytes")
      ->check(CLI::IsMember({"auto", "llmc", "uint16", "bytes"}));
  app.add_option("--sampling", opt.sampling, "random (default) or sequential windows")
      ->check(CLI::IsMember({"random", "sequential"}));
  app.add_option("--seq_len", opt.seq_len, "tokens per sample (default: the model's block_size)");
  app.add_option("--max-steps", opt.max_steps, "stop after this many optimizer steps (default: one pass over the data)");
  app.add_option("--warmup-steps", opt.warmup_steps,
                 "optimizer steps left out of the closing JSON summary's timing (default 0)");
  app.add_option("--log-interval", opt.log_interval, "log every N optimizer steps (default 10)")
      ->check(CLI::PositiveNumber);
  app.add_option("--profile-steps", opt.profile_steps,
                 "rank 0: profile this many steps after --warmup-steps and print where the time goes")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--profile-trace", opt.profile_trace, "with --profile-steps: also write a Chrome trace here");
  app.add_flag("--activation-checkpointing", opt.activation_checkpointing, "recompute each block in backward");
  app.add_option("--memory-phases", opt.memory_phases,
                 "rank 0 on a GPU: print the device peak of forward, backward and step in the first N steps")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--n_layer", opt.n_layer, "override the preset's layers");
  app.add_option("--n_embd", opt.n_embd, "override the preset's width");
  app.add_option("--n_head", opt.n_head, "override the preset's heads");
  app.add_option("--vocab", opt.vocab, "override the vocabulary (default 50304 for tokens, 256 for bytes)");
  app.add_option("--block_size", opt.block_size, "override the longest sequence (position embeddings)");
  app.add_option("--dropout", opt.dropout, "dropout probability (default 0)");
  app.add_option("--seed", opt.seed, "initialisation and sampling seed (default 1337)");
  app.add_option("--local_rank", opt.local_rank, "local rank passed from distributed launcher");
  app.add_option("--attention", opt.attention,
                 "SDPA kernel tried first: auto, flash, fa3, cudnn, efficient or math (default: DS_ATTENTION_BACKEND, "
                 "else auto = LibTorch's order)");
  app.add_option("--linear", opt.linear,
                 "the linear layers: ops (deepspeed::ops::linear, default: on CUDA every GEMM through cuBLASLt on "
                 "timed algorithms that keep the heuristic's results, the bias gradients in the weight GEMMs' "
                 "epilogue; DS_GEMM_TUNED=0 for LibTorch's GEMMs and the column-sum kernel) or aten (at::linear)")
      ->check(CLI::IsMember({"aten", "ops"}));
  auto ds_args = deepspeed::add_config_arguments(app);
  deepspeed::parse_arguments(app, argc, argv);

  // Errors below (UsageError) end the program with one line and exit code 2 (parse_arguments installed the handler).
  if (opt.attention.empty()) deepspeed::ops::apply_attention_backend_from_env();
  else deepspeed::ops::set_attention_backend(deepspeed::ops::parse_attention_backend(opt.attention, "--attention"));
  if (opt.data.empty()) opt.data = gpt2::default_text_file();
  if (opt.data.empty()) throw deepspeed::UsageError("--data: no default text file found; pass a token or text file");
  auto tokens = gpt2::TokenFile::open(opt.data, gpt2::parse_token_format(opt.data_format));
  const gpt2::GPTConfig cfg = model_config(opt, *tokens);
  const std::int64_t seq_len = opt.seq_len > 0 ? opt.seq_len : cfg.block_size;
  if (seq_len > cfg.block_size) {
    throw deepspeed::UsageError("--seq_len " + std::to_string(seq_len) + " exceeds the block_size " +
                                std::to_string(cfg.block_size));
  }
  auto trainset = std::make_shared<gpt2::TokenWindows>(
      tokens, seq_len, opt.sampling == "random" ? gpt2::TokenWindows::Sampling::kRandom : gpt2::TokenWindows::Sampling::kSequential,
      /*num_windows=*/0, opt.seed, cfg.vocab_size);

  torch::manual_seed(opt.seed);
  gpt2::GPT model(cfg);
  deepspeed::InitializeOptions init;
  init.param_groups = param_groups(model);
  init.data_seed = opt.seed;
  auto [engine, optimizer, trainloader, scheduler] =
      deepspeed::initialize(ds_args, model, model->parameters(), trainset, std::move(init));
  // DeepSpeed leaves this to the program (Megatron calls deepspeed.checkpointing.configure); so do we.
  deepspeed::checkpointing::configure(engine.config().activation_checkpointing);
  torch::manual_seed(opt.seed + engine.global_rank());  // dropout masks differ per rank

  const auto comm = engine.communicator();
  const bool rank0 = engine.global_rank() == 0;
  const int world = engine.world_size();
  const double flops_per_token = gpt2::flops_per_token(cfg, seq_len);
  if (rank0) {
    const std::string sdpa = deepspeed::ops::attention_backend_name(deepspeed::ops::attention_backend());
    const std::string attention = deepspeed::ops::qkv_attention_requested() ? "qkv_attention (else SDPA " + sdpa + ")"
                                                                             : "SDPA " + sdpa + " (DS_QKV_ATTENTION=0)";
    std::printf("gpt2: %s, %lld layers, d=%lld, %lld heads, vocab %lld, seq_len %lld, %.2fM parameters, "
                "%.3g FLOPs/token, activation checkpointing %s, attention %s\n",
                opt.model.c_str(), static_cast<long long>(cfg.n_layer), static_cast<long long>(cfg.n_embd),
                static_cast<long long>(cfg.n_head), static_cast<long long>(cfg.vocab_size),
                static_cast<long long>(seq_len), gpt2::num_parameters(cfg) / 1e6, flops_per_token,
                cfg.activation_checkpointing ? "on" : "off", attention.c_str());
    std::printf("gpt2: data %s (%s, %lld tokens, %zu windows)\n", opt.data.c_str(),
                gpt2::token_format_name(tokens->format()), static_cast<long long>(tokens->size()), trainset->size());
    std::fflush(stdout);
  }
  if (trainloader->size() == 0) throw deepspeed::UsageError("gpt2: no micro-batches for this rank; use more data");

  const std::int64_t steps_per_pass =
      static_cast<std::int64_t>(trainloader->size()) / engine.gradient_accumulation_steps();
  const std::int64_t max_steps = opt.max_steps >= 0 ? opt.max_steps : std::max<std::int64_t>(1, steps_per_pass);
  const c10::Device device = engine.device();

  at::Tensor loss_sum = at::zeros({}, at::TensorOptions().dtype(at::kFloat).device(device));
  double tokens_seen = 0, micro_batches = 0;
  deepspeed::engine::synchronize_device(device);
  auto interval_start = std::chrono::steady_clock::now();
  std::int64_t last_logged = 0;
  // The closing summary times steps (warmup_steps, max_steps]; tokens counted on every rank, summed at the end.
  double timed_tokens = 0, loss_first = 0, loss_last = 0;
  auto timed_start = std::chrono::steady_clock::now();
  // Profiles the steps after the warm-up (they then count in the summary's timing, with the profiler's cost).
  std::optional<gpt2::StepProfiler> profiler;
  if (opt.profile_steps > 0 && rank0) profiler.emplace(device, opt.profile_trace);
  if (profiler && opt.warmup_steps == 0) profiler->start();
  gpt2::MemoryPhases phases(device, rank0 ? opt.memory_phases : 0);

  while (engine.global_steps() < max_steps) {
    for (auto& batch : *trainloader) {
      auto x = batch.data.to(device, /*non_blocking=*/true);
      auto y = batch.target.to(device, /*non_blocking=*/true);
      const std::int64_t before = engine.global_steps();
      phases.begin(0, before);
      auto loss = gpt2::lm_loss(engine(x), y);
      phases.begin(1, before);
      engine.backward(loss);
      phases.begin(2, before);
      engine.step();
      phases.end_micro_step(engine.global_steps(), engine.global_steps() != before);
      loss_sum += loss.detach();
      tokens_seen += static_cast<double>(x.numel());
      if (before >= opt.warmup_steps) timed_tokens += static_cast<double>(x.numel());
      micro_batches += 1;
      const std::int64_t step = engine.global_steps();
      if (step == before) continue;
      if (step == opt.warmup_steps) {
        deepspeed::engine::synchronize_device(device);
        timed_start = std::chrono::steady_clock::now();
        if (profiler) profiler->start();
      }
      if (profiler && step == opt.warmup_steps + opt.profile_steps) {
        profiler->stop(opt.profile_steps);
        profiler.reset();
      }
      if (step == 1 || step % opt.log_interval == 0 || step == max_steps) {
        // Every rank takes part: the sums are all-reduced.
        deepspeed::engine::synchronize_device(device);
        const double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - interval_start).count();
        const double loss_all = comm->all_reduce_scalar(loss_sum.item<double>(), deepspeed::comm::ReduceOp::kSum);
        const double batches_all = comm->all_reduce_scalar(micro_batches, deepspeed::comm::ReduceOp::kSum);
        const double tokens_all = comm->all_reduce_scalar(tokens_seen, deepspeed::comm::ReduceOp::kSum);
        const double tok_per_s = tokens_all / seconds;
        if (step == 1) loss_first = loss_all / batches_all;
        loss_last = loss_all / batches_all;
        if (rank0) {
          gpt2::print_step_line(step, max_steps, loss_all / batches_all, engine.get_lr().at(0), tok_per_s,
                                1e3 * seconds / static_cast<double>(step - last_logged), flops_per_token, world,
                                device);
          // The example's own curves beside the engine's, in the files the config's monitors write (a no-op
          // without monitors): the token rate, MFU and the loss averaged over every rank.
          const std::int64_t samples = engine.global_samples();
          std::vector<deepspeed::monitor::Event> events = {
              {"Train/Samples/tokens_per_sec", tok_per_s, samples},
              {"Train/Samples/loss_all_ranks", loss_all / batches_all, samples}};
          if (device.is_cuda()) events.push_back({"Train/Samples/mfu", gpt2::mfu(flops_per_token, tok_per_s, world), samples});
          engine.monitor().write(events);
        }
        loss_sum.zero_();
        tokens_seen = micro_batches = 0;
        last_logged = step;
        interval_start = std::chrono::steady_clock::now();
      }
      if (step >= max_steps) break;
    }
  }
  if (profiler) profiler->stop(engine.global_steps() - opt.warmup_steps);  // the run ended inside the span
  print_summary(engine, opt, cfg, seq_len, flops_per_token, timed_tokens,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - timed_start).count(),
                max_steps - opt.warmup_steps, loss_first, loss_last);
  return 0;
}
