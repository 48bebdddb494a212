// The engine-overhead baseline of issue #6: the examples' GPT-2 trained on one device by a hand-written LibTorch
// loop, with no engine, no launcher and no communicator, doing what the engine does at world size 1 and ZeRO
// stage 0 in bf16 — and doing it the cheapest way a careful programmer would:
//
//   * the model in bf16; its parameters are views into one flat bf16 buffer per optimizer group, and so are
//     their gradients (autograd accumulates into the views in place), so each copy below is one kernel;
//   * an fp32 flat master copy and an fp32 flat gradient: after every micro-batch the bf16 gradient is added
//     into it (fp32 accumulation across micro-batches, as the engine does) and zeroed;
//   * the global L2 norm and clip as device ops (no host sync), at::_fused_adamw_ on the masters, one copy back;
//   * the lr from the same WarmupCosineLR code, the same TokenWindows / DataLoader sample order.
//
//   gpt2_libtorch_loop --deepspeed_config examples/gpt2/ds_config_124M.json --data tokens.bin \
//       --data-format uint16 --max-steps 40 --log-interval 20 --warmup-steps 20
//
// It prints the example's step lines and its closing JSON line with "impl": "libtorch-loop", so
// bench/run_gpt2_suite.sh reads both programs the same way. Only the config's batch sizes, optimizer
// (Adam/AdamW), scheduler, gradient_clipping, bf16 and activation_checkpointing sections are read.
//
// --cuda-graph (CUDA; "impl": "libtorch-loop-graph"): what launching a step's ~2,000 kernels one by one costs,
// measured by its absence. After kEagerMicroBatches micro-batches run as above (every GEMM shape timed, cuDNN's
// plans built, the allocator warm), one micro-batch's forward, backward and fp32 gradient accumulation are
// captured as CUDA graphs — one for a window's first micro-batch (which copies into the fp32 gradient), one for
// the others (which add) — and replayed on static batch buffers; the optimizer step (clip, fused AdamW at the
// scheduler's lr, the copy back) stays eager. Same arithmetic, so the same losses. Not with activation
// checkpointing (its recomputation sets the RNG state from the host, which a replay would skip).
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>

#include <ATen/ATen.h>
#include <CLI/CLI.hpp>

#if __has_include(<ATen/cuda/CUDAGraph.h>)
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#define DS_LOOP_CUDA_GRAPH
#endif

#include "deepspeed/config/config.h"
#include "deepspeed/data/dataloader.h"
#include "deepspeed/engine/activation_checkpointing.h"
#include "deepspeed/engine/timers.h"
#include "deepspeed/optim/lr_schedules.h"
#include "deepspeed/util/error.h"
#include "examples/gpt2/data.h"
#include "examples/gpt2/model.h"
#include "examples/gpt2/report.h"

namespace gpt2 = deepspeed::examples::gpt2;

namespace {

struct Options {
  std::string config;
  std::string model = "124M";
  std::string data;
  std::string data_format = "auto";
  std::string sampling = "random";
  std::string device = "cuda";
  std::string linear = "ops";  // as the GPT-2 example's --linear, so the two run the same model
  std::int64_t seq_len = 0;
  std::int64_t max_steps = 40;
  std::int64_t warmup_steps = 0;
  int log_interval = 10;
  bool activation_checkpointing = false;
  bool cuda_graph = false;
  std::optional<std::int64_t> n_layer, n_embd, n_head;
  std::uint64_t seed = 1337;
};

// One optimizer group's flat state. Parameters are views of `weights`, their .grad views of `grads16`.
struct FlatGroup {
  std::vector<at::Tensor> params;
  double weight_decay = 0;
  at::Tensor weights, grads16, master, grad32, exp_avg, exp_avg_sq, step;
};

FlatGroup flatten(std::vector<at::Tensor> params, double weight_decay, c10::Device device) {
  FlatGroup g;
  g.params = std::move(params);
  g.weight_decay = weight_decay;
  std::int64_t total = 0;
  for (const auto& p : g.params) total += p.numel();
  const auto bf16 = at::TensorOptions().dtype(at::kBFloat16).device(device);
  g.weights = at::empty({total}, bf16);
  g.grads16 = at::zeros({total}, bf16);
  std::int64_t offset = 0;
  at::NoGradGuard no_grad;
  for (auto& p : g.params) {
    const auto n = p.numel();
    auto view = g.weights.narrow(0, offset, n).view(p.sizes());
    view.copy_(p);
    p.set_data(view);
    p.mutable_grad() = g.grads16.narrow(0, offset, n).view(p.sizes());
    offset += n;
  }
  g.master = g.weights.to(at::kFloat);
  g.grad32 = at::zeros_like(g.master);
  g.exp_avg = at::zeros_like(g.master);
  g.exp_avg_sq = at::zeros_like(g.master);
  g.step = at::zeros({}, g.master.options());
  return g;
}

// One micro-batch's work: forward, backward, the bf16 gradient into the fp32 one (copied for a window's first
// micro-batch, added for the others), the loss into the running sum.
using MicroStep = std::function<void(const at::Tensor& x, const at::Tensor& y, bool first_in_window)>;

#ifdef DS_LOOP_CUDA_GRAPH
// Micro-batches eager before the capture: enough for every shape's first call (the timed GEMM choice waits for
// the device, which no capture may do) and a warm allocator.
constexpr int kEagerMicroBatches = 3;

// The micro-step as CUDA graphs on static batch buffers. The caller runs everything on a side stream (captures
// cannot use the default one); both graphs share one memory pool, which is safe because they never run at once
// and nothing allocated inside one outlives it.
class GraphedMicroStep {
 public:
  explicit GraphedMicroStep(MicroStep body) : body_(std::move(body)) {}

  void operator()(const at::Tensor& x, const at::Tensor& y, bool first_in_window) {
    if (eager_left_ > 0) {
      --eager_left_;
      body_(x, y, first_in_window);
      return;
    }
    if (!x_.defined()) {
      x_ = at::empty_like(x);
      y_ = at::empty_like(y);
    }
    if (x.sizes() != x_.sizes() || y.sizes() != y_.sizes()) {
      throw deepspeed::UsageError("--cuda-graph: every micro-batch must have the same shape");
    }
    x_.copy_(x);
    y_.copy_(y);
    auto& graph = first_in_window ? first_ : rest_;
    if (!graph) graph = capture(first_in_window);
    graph->replay();
  }

 private:
  std::unique_ptr<at::cuda::CUDAGraph> capture(bool first_in_window) {
    c10::cuda::device_synchronize();  // nothing of the eager steps still queued when the capture starts
    // The graphs' pool keeps its activations for good: hand the eager steps' cached blocks back first, so a model
    // that fits once (1.5B: ~40 GiB) does not need room for two.
    c10::cuda::CUDACachingAllocator::emptyCache();
    auto graph = std::make_unique<at::cuda::CUDAGraph>();
    graph->capture_begin(pool_);
    body_(x_, y_, first_in_window);
    graph->capture_end();
    pool_ = graph->pool();
    return graph;
  }

  MicroStep body_;
  int eager_left_ = kEagerMicroBatches;
  at::Tensor x_, y_;
  std::unique_ptr<at::cuda::CUDAGraph> first_, rest_;
  at::cuda::MempoolId_t pool_{0, 0};
};
#endif

// The lr the schedule writes, per group (both groups share the optimizer's lr).
class LrTarget : public deepspeed::optim::ScheduleTarget {
 public:
  LrTarget(std::size_t groups, double lr, double beta1) : lr_(groups, lr), beta1_(beta1) {}
  std::size_t num_groups() const override { return lr_.size(); }
  double lr(std::size_t g) const override { return lr_.at(g); }
  void set_lr(std::size_t g, double lr) override { lr_.at(g) = lr; }
  bool has_momentum() const override { return true; }
  double momentum(std::size_t) const override { return beta1_; }
  void set_momentum(std::size_t, double m) override { beta1_ = m; }
  bool has_betas() const override { return true; }
  void set_beta2(std::size_t, double) override {}

 private:
  std::vector<double> lr_;
  double beta1_;
};

int run(const Options& opt) {
  const auto json = deepspeed::config::load_json_file(opt.config);
  const auto ds = deepspeed::config::parse_config(json, opt.config, /*world_size=*/1);
  if (!ds.bf16.enabled) throw deepspeed::UsageError(opt.config + ": the loop baseline runs bf16 only (bf16.enabled)");
  const auto& oc = ds.optimizer;
  if (oc.type != "adamw" && !(oc.type == "adam" && oc.adam_w_mode)) {
    throw deepspeed::UsageError(opt.config + ": optimizer.type: the loop baseline runs AdamW only");
  }
  c10::Device device(opt.device);
  if (device.is_cuda() && !device.has_index()) device = c10::Device(c10::kCUDA, 0);  // allocator stats need one

  auto tokens = gpt2::TokenFile::open(opt.data, gpt2::parse_token_format(opt.data_format));
  auto preset = gpt2::preset(opt.model);
  if (!preset) throw deepspeed::UsageError("--model: unknown model \"" + opt.model + "\"");
  gpt2::GPTConfig cfg = *preset;
  if (tokens->format() == gpt2::TokenFormat::kBytes) cfg.vocab_size = 256;
  if (opt.n_layer) cfg.n_layer = *opt.n_layer;
  if (opt.n_embd) cfg.n_embd = *opt.n_embd;
  if (opt.n_head) cfg.n_head = *opt.n_head;
  cfg.ops_linear = opt.linear == "ops";
  cfg.activation_checkpointing = opt.activation_checkpointing;
  const std::int64_t seq_len = opt.seq_len > 0 ? opt.seq_len : cfg.block_size;
  auto windows = std::make_shared<gpt2::TokenWindows>(
      tokens, seq_len,
      opt.sampling == "random" ? gpt2::TokenWindows::Sampling::kRandom : gpt2::TokenWindows::Sampling::kSequential,
      /*num_windows=*/0, opt.seed, cfg.vocab_size);
  const auto micro = static_cast<std::size_t>(ds.batch.micro_batch_per_gpu);
  const std::int64_t gas = ds.batch.gradient_accumulation_steps;
  deepspeed::data::DataLoader loader(windows, micro,
                                     deepspeed::data::DistributedSampler(windows->size(), 1, 0, true, opt.seed));
  deepspeed::checkpointing::configure(ds.activation_checkpointing);

  // Same initial weights as the example (same seed, same construction order).
  torch::manual_seed(opt.seed);
  gpt2::GPT model(cfg);
  model->to(device, at::kBFloat16);
  model->train();
  std::vector<at::Tensor> decay, no_decay;
  for (auto& p : model->parameters()) (p.dim() >= 2 ? decay : no_decay).push_back(p);
  std::vector<FlatGroup> groups;
  groups.push_back(flatten(decay, oc.weight_decay, device));
  groups.push_back(flatten(no_decay, 0.0, device));

  LrTarget lrs(groups.size(), oc.lr, oc.betas.at(0));
  auto scheduler = deepspeed::optim::make_scheduler(ds.scheduler, lrs, opt.config);

  const double flops_per_token = gpt2::flops_per_token(cfg, seq_len);
  std::printf("gpt2 libtorch loop: %s, %.2fM parameters, micro %zu x accum %lld, seq_len %lld, %s\n", opt.model.c_str(),
              gpt2::num_parameters(cfg) / 1e6, micro, static_cast<long long>(gas), static_cast<long long>(seq_len),
              device.str().c_str());

  if (opt.cuda_graph && !device.is_cuda()) throw deepspeed::UsageError("--cuda-graph: needs --device cuda");
  if (opt.cuda_graph && opt.activation_checkpointing) {
    throw deepspeed::UsageError("--cuda-graph: not with --activation-checkpointing");
  }
  at::Tensor loss_sum = at::zeros({}, at::TensorOptions().dtype(at::kFloat).device(device));
  // The loss goes into loss_sum in place, so a captured micro-step adds into the same tensor at every replay.
  const MicroStep eager_step = [&](const at::Tensor& x, const at::Tensor& y, bool first_in_window) {
    // The engine divides the loss by the accumulation steps before backward; so does this loop.
    auto loss = gpt2::lm_loss(model->forward(x), y);
    (gas > 1 ? loss / static_cast<double>(gas) : loss).backward();
    at::NoGradGuard no_grad;
    for (auto& g : groups) {
      if (first_in_window) {
        g.grad32.copy_(g.grads16);
      } else {
        g.grad32.add_(g.grads16);
      }
      g.grads16.zero_();
    }
    loss_sum.add_(loss.detach());
  };
  MicroStep micro_step = eager_step;
#ifdef DS_LOOP_CUDA_GRAPH
  // Captures may not use the default stream: with --cuda-graph the whole run goes on a side stream.
  std::optional<c10::cuda::CUDAStreamGuard> side_stream;
  if (opt.cuda_graph) {
    side_stream.emplace(c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device.index()));
    auto graphed = std::make_shared<GraphedMicroStep>(eager_step);
    micro_step = [graphed](const at::Tensor& x, const at::Tensor& y, bool first) { (*graphed)(x, y, first); };
  }
#else
  if (opt.cuda_graph) throw deepspeed::UsageError("--cuda-graph: this LibTorch has no CUDA graphs");
#endif
  double tokens_seen = 0, micro_batches = 0, timed_tokens = 0, loss_first = 0, loss_last = 0;
  std::int64_t step = 0, micro_in_window = 0, last_logged = 0;
  deepspeed::engine::synchronize_device(device);
  auto interval_start = std::chrono::steady_clock::now();
  auto timed_start = interval_start;

  while (step < opt.max_steps) {
    for (auto& batch : loader) {
      auto x = batch.data.to(device, /*non_blocking=*/true);
      auto y = batch.target.to(device, /*non_blocking=*/true);
      micro_step(x, y, micro_in_window == 0);
      tokens_seen += static_cast<double>(x.numel());
      if (step >= opt.warmup_steps) timed_tokens += static_cast<double>(x.numel());
      micro_batches += 1;
      if (++micro_in_window < gas) continue;
      micro_in_window = 0;

      at::NoGradGuard no_grad;
      if (ds.gradient_clipping > 0) {
        std::vector<at::Tensor> norms;
        for (auto& g : groups) norms.push_back(at::linalg_vector_norm(g.grad32, 2));
        const auto total = at::linalg_vector_norm(at::stack(norms), 2);
        const auto coef = at::clamp_max(ds.gradient_clipping / (total + 1e-6), 1.0);
        for (auto& g : groups) g.grad32.mul_(coef);
      }
      for (std::size_t i = 0; i < groups.size(); ++i) {
        auto& g = groups[i];
        g.step.add_(1);  // the fused kernel reads the step count; torch.optim increments it before the call
        at::_fused_adamw_(std::vector<at::Tensor>{g.master}, std::vector<at::Tensor>{g.grad32},
                          std::vector<at::Tensor>{g.exp_avg}, std::vector<at::Tensor>{g.exp_avg_sq}, {},
                          std::vector<at::Tensor>{g.step}, lrs.lr(i), oc.betas.at(0), oc.betas.at(1), g.weight_decay,
                          oc.eps, /*amsgrad=*/false, /*maximize=*/false);
        g.weights.copy_(g.master);
      }
      if (scheduler) scheduler->step();
      ++step;

      if (step == opt.warmup_steps) {
        deepspeed::engine::synchronize_device(device);
        timed_start = std::chrono::steady_clock::now();
      }
      if (step == 1 || step % opt.log_interval == 0 || step == opt.max_steps) {
        deepspeed::engine::synchronize_device(device);
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - interval_start).count();
        const double mean_loss = loss_sum.item<double>() / micro_batches;
        const double tok_per_s = tokens_seen / seconds;
        if (step == 1) loss_first = mean_loss;
        loss_last = mean_loss;
        gpt2::print_step_line(step, opt.max_steps, mean_loss, lrs.lr(0), tok_per_s,
                              1e3 * seconds / static_cast<double>(step - last_logged), flops_per_token, 1, device);
        loss_sum.zero_();
        tokens_seen = micro_batches = 0;
        last_logged = step;
        interval_start = std::chrono::steady_clock::now();
      }
      if (step >= opt.max_steps) break;
    }
  }
  deepspeed::engine::synchronize_device(device);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - timed_start).count();
  gpt2::RunSummary summary;
  summary.impl = opt.cuda_graph ? "libtorch-loop-graph" : "libtorch-loop";
  summary.model = opt.model;
  summary.config = cfg;
  summary.seq_len = seq_len;
  summary.micro_batch = static_cast<std::int64_t>(micro);
  summary.grad_accum = gas;
  summary.warmup_steps = opt.warmup_steps;
  summary.timed_steps = opt.max_steps - opt.warmup_steps;
  summary.tokens = timed_tokens;
  summary.seconds = seconds;
  summary.flops_per_token = flops_per_token;
  summary.cuda = device.is_cuda();
  summary.peak_mem_gib = {gpt2::peak_memory_gib(device)};
  summary.loss_first = loss_first;
  summary.loss_last = loss_last;
  std::printf("%s\n", gpt2::summary_json(summary).dump().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"GPT-2, hand-written LibTorch loop (engine-overhead baseline)"};
  Options opt;
  app.add_option("--deepspeed_config", opt.config, "ds_config.json (batch, optimizer, scheduler, clipping, bf16)")
      ->required();
  app.add_option("--model", opt.model, "124M (default), 350M, 774M, 1.5B, gpt2[-medium|-large|-xl]");
  app.add_option("--data", opt.data, "token file (.bin, llm.c or raw uint16) or text file (bytes)")->required();
  app.add_option("--data-format", opt.data_format, "auto (default), llmc, uint16 or bytes")
      ->check(CLI::IsMember({"auto", "llmc", "uint16", "bytes"}));
  app.add_option("--sampling", opt.sampling, "random (default) or sequential")
      ->check(CLI::IsMember({"random", "sequential"}));
  app.add_option("--device", opt.device, "cuda (default) or cpu");
  app.add_option("--linear", opt.linear, "ops (deepspeed::ops::linear, default, as the example's) or aten")
      ->check(CLI::IsMember({"aten", "ops"}));
  app.add_option("--seq_len", opt.seq_len, "tokens per sample (default: the model's block_size)");
  app.add_option("--max-steps", opt.max_steps, "optimizer steps (default 40)")->check(CLI::PositiveNumber);
  app.add_option("--warmup-steps", opt.warmup_steps, "steps left out of the closing JSON line's timing");
  app.add_option("--log-interval", opt.log_interval, "log every N optimizer steps (default 10)")
      ->check(CLI::PositiveNumber);
  app.add_flag("--activation-checkpointing", opt.activation_checkpointing, "recompute each block in backward");
  app.add_flag("--cuda-graph", opt.cuda_graph,
               "replay each micro-batch's forward, backward and gradient accumulation as a CUDA graph");
  app.add_option("--n_layer", opt.n_layer, "override the preset's layers");
  app.add_option("--n_embd", opt.n_embd, "override the preset's width");
  app.add_option("--n_head", opt.n_head, "override the preset's heads");
  app.add_option("--seed", opt.seed, "initialisation and sampling seed (default 1337)");
  CLI11_PARSE(app, argc, argv);
  try {
    return run(opt);
  } catch (const deepspeed::UsageError& e) {
    std::fprintf(stderr, "gpt2_libtorch_loop: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {  // a capture refused (an operator that waits for the device), ...
    std::fprintf(stderr, "gpt2_libtorch_loop: %s\n", e.what());
    return 1;
  }
}
