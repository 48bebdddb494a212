// Multi-rank training driver for the equivalence tests. Under the launcher, each rank trains on its share of
// every global batch; run alone with --micro equal to the global batch, it is the single-process reference.
// Rank 0 saves the final parameters; --compare checks two such files.
#include <chrono>
#include <cstdio>
#include <algorithm>
#include <limits>
#include <thread>

#include <ATen/ATen.h>
#include <torch/nn/functional/loss.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>
#include <torch/serialize.h>

#include "deepspeed/checkpoint/files.h"
#include "deepspeed/deepspeed.h"
#include "deepspeed/zero/init.h"
#include "deepspeed/util/strings.h"
#include "tests/support/engine_internals.h"

namespace {

// Parameter sizes 7·13, 13, 13·5, 5 and 3: none divides evenly by 2, 3 or 4 ranks. fc1 and fc2 are ZeRO-3
// units; `gain` belongs to none (the root unit). The layouts declare the units three ways (same parameters,
// values and order): "units" one zero::Unit per layer, "list" a ModuleList turned into units with
// zero::units_of, "sequential" a nested Sequential that initialize() finds and wraps by itself.
struct TinyNetImpl : torch::nn::Module {
  explicit TinyNetImpl(const std::string& layout = "units") : layout(layout) {
    fc1 = torch::nn::Linear(7, 13);
    fc2 = torch::nn::Linear(13, 5);
    if (layout == "list") {
      layers = register_module("layers", torch::nn::ModuleList(fc1, fc2));
      list_units = deepspeed::zero::units_of<torch::nn::LinearImpl>(layers);
    } else if (layout == "sequential") {
      body = register_module("body", torch::nn::Sequential(fc1, torch::nn::Tanh(), fc2));
    } else {
      register_module("fc1", fc1);
      register_module("fc2", fc2);
      unit1 = deepspeed::zero::Unit(fc1);
      unit2 = deepspeed::zero::Unit(fc2);
    }
    gain = register_parameter("gain", torch::ones({3}));
  }
  torch::Tensor forward(torch::Tensor x) {
    torch::Tensor y;
    if (layout == "list") {
      y = list_units[1](torch::tanh(list_units[0](x)));
    } else if (layout == "sequential") {
      y = body->forward(x);
    } else {
      y = unit2(torch::tanh(unit1(x)));
    }
    return y * gain.sum() / 3.0;
  }
  std::string layout;
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
  torch::nn::ModuleList layers{nullptr};
  torch::nn::Sequential body{nullptr};
  torch::Tensor gain;
  deepspeed::zero::Unit unit1, unit2;
  std::vector<deepspeed::zero::Unit> list_units;
};
TORCH_MODULE(TinyNet);

int compare(const std::string& a, const std::string& b, double rtol) {
  at::Tensor x, y;
  torch::load(x, a);
  torch::load(y, b);
  const double err = ((x - y).abs().max() / (y.abs().max() + 1e-30)).item<double>();
  std::printf("max relative difference %.3e (tolerance %.1e) over %lld values\n", err, rtol,
              static_cast<long long>(x.numel()));
  return x.sizes() == y.sizes() && err <= rtol ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dp_train"};
  int steps = 6, micro = 2, gas = 1, stall_rank = -1, stage = 0, overflow_step = -1, overflow_rank = 0;
  std::string dtype = "fp32";
  double clip = 0.0, rtol = 1e-5;
  std::string out, optimizer = "AdamW";
  std::vector<std::string> compare_files;
  std::string save_dir, load_dir;
  std::vector<int> save_at;
  bool exit_after_save = false, print_losses = false, no_prefetch = false, zero3_checks = false;
  app.add_option("--steps", steps);
  int stop_at = -1;
  app.add_option("--stop-at", stop_at, "stop after this many steps (the data still covers --steps)");
  app.add_option("--micro", micro);
  app.add_option("--gas", gas);
  app.add_option("--clip", clip);
  app.add_option("--optimizer", optimizer);
  app.add_option("--out", out);
  app.add_option("--stall-rank", stall_rank, "this rank skips the first all-reduce (timeout test)");
  app.add_option("--dtype", dtype)->check(CLI::IsMember({"fp32", "fp16", "bf16"}));
  app.add_option("--stage", stage);
  app.add_option("--overflow-step", overflow_step, "micro-step at which --overflow-rank's loss becomes inf");
  app.add_option("--overflow-rank", overflow_rank);
  app.add_option("--compare", compare_files)->expected(2);
  std::vector<std::string> flatten_files;
  app.add_option("--flatten-state-dict", flatten_files, "IN OUT: a consolidated state dict → flat tensor in model order")
      ->expected(2);
  app.add_option("--save-dir", save_dir);
  app.add_option("--save-at", save_at, "save after these optimizer steps");
  app.add_flag("--exit-after-save", exit_after_save);
  app.add_option("--load-dir", load_dir, "resume from the latest checkpoint here");
  app.add_flag("--print-losses", print_losses);
  std::string monitor_dir;
  app.add_option("--monitor-dir", monitor_dir,
                 "tensorboard and csv_monitor under this directory (tb/dp, csv/dp), comms_logger, "
                 "wall_clock_breakdown, memory_breakdown, a step line every step");
  std::string save_16bit;
  app.add_option("--save-16bit", save_16bit, "after training, save_16bit_model() into this directory");
  app.add_flag("--no-prefetch", no_prefetch, "ZeRO-3 without prefetching (stage3_prefetch_bucket_size 0)");
  app.add_flag("--zero3-checks", zero3_checks, "after training: numel 0 outside units, GatheredParameters edits");
  bool zero_init = false;
  std::string layout = "units";
  app.add_option("--layout", layout, "how the model declares its ZeRO-3 units: units, list or sequential")
      ->check(CLI::IsMember({"units", "list", "sequential"}));
  app.add_flag("--zero-init", zero_init, "construct the model under deepspeed::zero::Init");
  double offload_ratio = -1;
  app.add_option("--offload", offload_ratio, "offload_optimizer to the CPU with this ratio (0-1)");
  bool offload_param = false;
  app.add_flag("--offload-param", offload_param, "stage 3: offload_param to the CPU (pinned)");
  app.add_option("--rtol", rtol);
  auto ds_args = deepspeed::add_config_arguments(app);
  deepspeed::parse_arguments(app, argc, argv);
  if (!compare_files.empty()) return compare(compare_files[0], compare_files[1], rtol);
  if (!flatten_files.empty()) {
    const auto bytes = deepspeed::checkpoint::read_file(flatten_files[0]);
    const auto dict = torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end())).toGenericDict();
    TinyNet shapes;
    std::vector<at::Tensor> flat;
    for (const auto& item : shapes->named_parameters()) flat.push_back(dict.at(item.key()).toTensor().reshape(-1));
    torch::save(at::cat(flat), flatten_files[1]);
    return 0;
  }

  auto comm = deepspeed::comm::init_distributed();
  const int ws = comm->world_size();
  const int rank = comm->rank();
  if (rank == stall_rank) {
    std::this_thread::sleep_for(std::chrono::seconds(60));
    return 0;
  }

  deepspeed::config::Json config = {
      {"train_micro_batch_size_per_gpu", micro},
      {"gradient_accumulation_steps", gas},
      {"gradient_clipping", clip},
      {"optimizer", {{"type", optimizer}, {"params", {{"lr", 0.05}, {"weight_decay", 0.01}}}}},
      {"scheduler", {{"type", "WarmupLR"}, {"params", {{"warmup_num_steps", 3}, {"warmup_type", "linear"}}}}},
  };
  if (optimizer == "SGD") config["optimizer"]["params"]["momentum"] = 0.9;
  if (dtype == "fp16") config["fp16"] = {{"enabled", true}, {"initial_scale_power", 8}, {"hysteresis", 1}};
  if (dtype == "bf16") config["bf16"] = {{"enabled", true}};
  if (stage > 0) {
    config["zero_optimization"] = {{"stage", stage}, {"reduce_bucket_size", 40}};
    // Small models: keep units partitioned (DeepSpeed's default threshold would make them persistent).
    if (stage == 3) config["zero_optimization"]["stage3_param_persistence_threshold"] = 0;
    if (stage == 3) config["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] = true;
    if (no_prefetch) config["zero_optimization"]["stage3_prefetch_bucket_size"] = 0;
    if (const char* d = std::getenv("DP_TRAIN_REUSE_DISTANCE")) config["zero_optimization"]["stage3_max_reuse_distance"] = std::atoll(d);
    if (offload_ratio >= 0) {
      config["zero_optimization"]["offload_optimizer"] = {{"device", "cpu"}, {"ratio", offload_ratio}, {"pin_memory", true}};
    }
    if (offload_param) config["zero_optimization"]["offload_param"] = {{"device", "cpu"}, {"pin_memory", true}};
  }

  if (!monitor_dir.empty()) {
    config["tensorboard"] = {{"enabled", true}, {"output_path", monitor_dir + "/tb"}, {"job_name", "dp"}};
    config["csv_monitor"] = {{"enabled", true}, {"output_path", monitor_dir + "/csv"}, {"job_name", "dp"}};
    config["comms_logger"] = {{"enabled", true}};
    config["wall_clock_breakdown"] = true;
    config["memory_breakdown"] = true;
    config["steps_per_print"] = 1;
  }
  torch::manual_seed(rank == 0 ? 7 : 100 + rank);  // ranks disagree: initialize() (or zero::Init) must fix it
  std::optional<deepspeed::zero::Init> init;
  if (zero_init) init.emplace();
  TinyNet net(layout);
  init.reset();
  if (rank != 0) {
    // Different initial weights on other ranks: initialize() must broadcast rank 0's.
    for (auto& p : net->parameters()) p.data().uniform_(-3, 3);
  }
  if (zero_init && net->fc1->weight.numel() != 0) return 14;  // partitioned as it was built
  deepspeed::InitializeOptions options;
  if (ds_args->deepspeed_config.empty()) options.config = config;
  auto [engine, opt, loader, sched] = deepspeed::initialize(ds_args, net, net->parameters(), nullptr, options);
  if (!monitor_dir.empty()) engine.set_total_steps(steps);

  const std::int64_t global_batch = static_cast<std::int64_t>(micro) * gas * ws;
  torch::manual_seed(42);
  const auto x = torch::randn({steps * global_batch, 7});
  const auto y = torch::randn({steps * global_batch, 5});
  int first_step = 0;
  if (!load_dir.empty()) {
    auto loaded = engine.load_checkpoint(load_dir);
    if (!loaded.load_path) {
      std::fprintf(stderr, "no checkpoint in %s\n", load_dir.c_str());
      return 3;
    }
    first_step = static_cast<int>(engine.global_steps());
    if (rank == 0) {
      std::printf("resumed from %s at step %d, client epoch=%lld note=%s\n", loaded.load_path->c_str(), first_step,
                  static_cast<long long>(loaded.client_state.at("epoch").toInt()),
                  loaded.client_state.at("note").toStringRef().c_str());
    }
  }
  for (int s = first_step; s < (stop_at >= 0 ? stop_at : steps); ++s) {
    double step_loss = 0;
    for (int m = 0; m < gas; ++m) {
      const std::int64_t start = s * global_batch + (static_cast<std::int64_t>(m) * ws + rank) * micro;
      auto out = engine(x.slice(0, start, start + micro).to(engine.device()));
      auto loss = torch::nn::functional::mse_loss(out.to(torch::kFloat), y.slice(0, start, start + micro).to(engine.device()));
      if (s * gas + m == overflow_step && rank == overflow_rank) loss = loss * std::numeric_limits<double>::infinity();
      step_loss += loss.item<double>();
      engine.backward(loss);
      engine.step();
    }
    if (print_losses && rank == 0) std::printf("step %d loss %.9g\n", s + 1, step_loss / gas);
    if (std::find(save_at.begin(), save_at.end(), s + 1) != save_at.end()) {
      engine.save_checkpoint(save_dir, std::nullopt, {{"epoch", static_cast<std::int64_t>(7)}, {"note", std::string("hello")}});
      if (exit_after_save) return 0;
    }
  }
  if (zero3_checks) {
    // Outside its unit a partitioned parameter holds nothing; the root's stay whole.
    const bool empty_outside = net->fc1->weight.numel() == 0 && net->fc2->bias.numel() == 0 && net->gain.numel() == 3;
    {
      deepspeed::GatheredParameters whole(engine, {net->fc1->weight}, /*modifier_rank=*/0);
      if (net->fc1->weight.numel() != 91) return 10;
      if (rank == 0) net->fc1->weight.detach().fill_(0.25);  // an edit on rank 0 only
    }
    {
      deepspeed::GatheredParameters whole(engine, {net->fc1->weight});
      if (net->fc1->weight.detach().ne(0.25).any().item<bool>()) return 11;  // every rank sees rank 0's edit
    }
    // Training goes on from the edited weights (the master weights took the edit too).
    auto loss = torch::nn::functional::mse_loss(engine(x.slice(0, 0, micro).to(engine.device())).to(torch::kFloat),
                                                y.slice(0, 0, micro).to(engine.device()));
    engine.backward(loss);
    if (!empty_outside) return 12;
    std::printf("rank %d: zero3 checks ok, %lld all-gathers\n", rank,
                static_cast<long long>(deepspeed::EngineInternals::zero(engine).unit_gathers()));
  }
  if (!save_16bit.empty() && !engine.save_16bit_model(save_16bit)) return 13;
  std::printf("rank %d: skipped=%lld loss_scale=%s\n", rank, static_cast<long long>(engine.skipped_steps()),
              deepspeed::util::py_float(engine.loss_scale()).c_str());
  if (!out.empty()) {
    deepspeed::GatheredParameters whole(engine, net->parameters());
    std::vector<at::Tensor> flat;
    for (auto& p : net->parameters()) flat.push_back(p.detach().cpu().to(torch::kFloat).reshape(-1));
    // Rank 0 writes OUT; the others OUT.rankN, so tests can check that ranks stayed identical.
    torch::save(at::cat(flat), rank == 0 ? out : out + ".rank" + std::to_string(rank));
  }
  return 0;
}
