// deepspeed_estimate: model-state memory per GPU and per node for a ds_config and a model size, for every ZeRO
// stage with and without optimizer offload, and ZeRO-3 with parameter offload (DeepSpeed's estimate_zero2/zero3_model_states_mem_needs_all_live,
// from this engine's own layout).
//
//   deepspeed_estimate --deepspeed_config ds.json --params 3.8e9 [--gpus-per-node 8] [--nodes 1]
//   deepspeed_estimate --deepspeed_config ds.json --shapes shapes.txt    (one tensor per line: "768 2304" or a count;
//                                                                         a blank line between flat groups / units)
//   deepspeed_estimate --deepspeed_config ds.json --transformer 50,4096,1024,50304 [--checkpointing]
//                      (a GPT-style model: layers, hidden, seq, vocab; its parameters, units and activations)
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "deepspeed/config/config.h"
#include "deepspeed/config/reader.h"
#include "deepspeed/util/error.h"
#include "deepspeed/util/strings.h"
#include "deepspeed/zero/activation_estimate.h"
#include "deepspeed/zero/memory_estimate.h"

namespace {

using deepspeed::util::cat;
namespace zero = deepspeed::zero;

// One tensor per line; a blank line starts another flat group (a ZeRO-3 unit: buckets never span two).
std::vector<std::vector<std::int64_t>> read_shapes(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw deepspeed::UsageError(cat("deepspeed_estimate: cannot read --shapes '", path, "'"));
  std::vector<std::vector<std::int64_t>> groups(1);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    std::istringstream dims(line);
    std::int64_t numel = 1, d = 0;
    bool any = false;
    while (dims >> d) numel *= d, any = true;
    if (!dims.eof()) throw deepspeed::UsageError(cat("deepspeed_estimate: ", path, ":", n, ": expected sizes, got '", line, "'"));
    if (any) groups.back().push_back(numel);
    else if (!groups.back().empty()) groups.emplace_back();
  }
  if (groups.back().empty()) groups.pop_back();
  if (groups.empty()) throw deepspeed::UsageError(cat("deepspeed_estimate: '", path, "' lists no tensor"));
  return groups;
}

std::string row(const deepspeed::config::Config& c, const zero::ModelShape& model, int world, int per_node) {
  const auto e = zero::estimate_model_states(c, model, world);
  std::string offload = c.zero.offload_optimizer.device == "none" ? std::string("none")
                                                                    : cat("optimizer (ratio ", c.zero.offload_optimizer.ratio, ")");
  if (c.zero.offload_param.device != "none") offload = offload == "none" ? "param" : offload + " + param";
  return cat("| ", c.zero.stage, " | ", offload, " | ", zero::gib(e.device_total()), " | ", zero::gib(e.weights), " | ",
             zero::gib(e.gradients), " | ", zero::gib(e.optimizer), " | ", zero::gib(e.host_total() * per_node), " |");
}

// The flat groups a GPT-style model gets, as the examples group its parameters: weight matrices and embeddings
// (weight decay), biases and LayerNorms (none). Stages 0-2 flatten each optimizer group whole; stage 3 each unit
// (the root: embeddings and the final LayerNorm; each block) by optimizer group. Bucketing and the offload
// ratio's rounding are per flat group, so the split matters (a block's group is often a single bucket).
zero::ModelShape transformer_model(const zero::TransformerShape& t, int stage) {
  const std::int64_t h = t.hidden;
  const std::vector<std::int64_t> block_decay{3 * h * h, h * h, 4 * h * h, 4 * h * h};
  const std::vector<std::int64_t> block_none{3 * h, h, 4 * h, h, 2 * h, 2 * h};
  zero::ModelShape model;
  if (stage == 3) {
    model.groups.push_back({t.vocab * h, t.seq * h});
    model.groups.push_back({2 * h});
    for (std::int64_t l = 0; l < t.layers; ++l) {
      model.groups.push_back(block_decay);
      model.groups.push_back(block_none);
    }
  } else {
    std::vector<std::int64_t> decay{t.vocab * h, t.seq * h}, none;
    for (std::int64_t l = 0; l < t.layers; ++l) {
      decay.insert(decay.end(), block_decay.begin(), block_decay.end());
      none.insert(none.end(), block_none.begin(), block_none.end());
    }
    none.push_back(2 * h);
    model.groups = {decay, none};
  }
  for (const auto& g : model.groups) model.numels.insert(model.numels.end(), g.begin(), g.end());
  model.largest_unit = std::max(t.block_parameters(), t.vocab * h + t.seq * h + 2 * h);
  return model;
}

zero::TransformerShape parse_transformer(const std::string& text, bool checkpointing, const deepspeed::config::Config& c) {
  std::vector<std::int64_t> v;
  bool ok = true;
  std::istringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    try {
      std::size_t used = 0;
      v.push_back(std::stoll(item, &used));
      ok = ok && used == item.size() && v.back() > 0;
    } catch (const std::exception&) {
      ok = false;
    }
  }
  if (!ok || v.size() != 4) {
    throw deepspeed::UsageError(cat("deepspeed_estimate: --transformer: expected LAYERS,HIDDEN,SEQ,VOCAB (four positive "
                                    "integers, e.g. 50,4096,1024,50304), got '", text, "'"));
  }
  zero::TransformerShape t;
  t.layers = v[0], t.hidden = v[1], t.seq = v[2], t.vocab = v[3];
  t.micro_batch = c.batch.micro_batch_per_gpu;
  t.checkpointing = checkpointing;
  t.element_bytes = c.bf16.enabled || c.fp16.enabled ? 2 : 4;
  return t;
}

void print_activations(const zero::TransformerShape& t, const deepspeed::config::Config& c, const zero::ModelShape& model,
                       int world) {
  const auto a = zero::estimate_activations(t);
  std::printf("\nActivations per GPU (%lld layers x %lld, seq %lld, micro-batch %lld, activation checkpointing %s): "
              "kept for backward %s, the head (logits, their gradient) %s, one block in backward %s.\n",
              static_cast<long long>(t.layers), static_cast<long long>(t.hidden), static_cast<long long>(t.seq),
              static_cast<long long>(t.micro_batch), t.checkpointing ? "on" : "off", zero::gib(a.saved).c_str(),
              zero::gib(a.head).c_str(), zero::gib(a.block).c_str());
  const auto estimate = zero::estimate_model_states(c, model, world);
  const auto states = estimate.device_total();
  const auto peak = states + a.backward_peak() + estimate.landing_lead + estimate.reductions_in_flight;
  std::string terms = cat("model states ", zero::gib(states), " + activations ", zero::gib(a.backward_peak()));
  if (estimate.landing_lead > 0) terms += cat(" + gradient buckets bound for the host ", zero::gib(estimate.landing_lead));
  if (estimate.reductions_in_flight > 0) {
    terms += cat(" + gradient buckets being reduced ", zero::gib(estimate.reductions_in_flight));
  }
  // The estimate counts the largest unit gathered; ZeRO-3 prefetches the next ones beside it.
  const std::string rest = c.zero.stage == 3 ? "; not predicted: the units ZeRO-3 keeps gathered beyond the "
                                               "largest (docs/zero.md, \"Memory\")"
                                             : "";
  std::printf("This config's device peak: about %s = %s%s.\n", zero::gib(peak).c_str(), terms.c_str(), rest.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  deepspeed::install_error_handler();
  CLI::App app{"Model-state memory per GPU and per node, for every ZeRO stage with and without offload"};
  std::string config_path, shapes;
  double params = 0;
  std::int64_t largest_unit = 0;
  int gpus_per_node = 1, nodes = 1;
  app.add_option("--deepspeed_config", config_path, "ds_config.json (precision, optimizer, bucket size, ratio)")->required();
  app.add_option("--params", params, "trainable parameters (e.g. 3.8e9)");
  app.add_option("--shapes", shapes, "file with one tensor per line (its sizes), instead of --params; a blank line "
                                     "separates flat groups (stage 3: units × optimizer param groups)");
  app.add_option("--largest-unit", largest_unit, "stage 3: elements of the largest unit (one is gathered at a time)");
  std::string transformer;
  bool checkpointing = false;
  auto* transformer_option =
      app.add_option("--transformer", transformer, "a GPT-style model instead of --params: LAYERS,HIDDEN,SEQ,VOCAB "
                                                   "(its parameters, ZeRO-3 units and activations at the config's "
                                                   "micro-batch)");
  app.add_flag("--checkpointing", checkpointing, "with --transformer: activation checkpointing (each block recomputed)")
      ->needs(transformer_option);
  app.add_option("--gpus-per-node", gpus_per_node)->check(CLI::PositiveNumber);
  app.add_option("--nodes", nodes)->check(CLI::PositiveNumber);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::fprintf(stderr, "deepspeed_estimate: error: %s\n", e.what());
    return 2;
  }
  if ((params > 0) + !shapes.empty() + !transformer.empty() != 1) {
    std::fprintf(stderr, "deepspeed_estimate: error: give --params, --shapes or --transformer (one of them)\n");
    return 2;
  }
  const int world = gpus_per_node * nodes;
  const auto config = deepspeed::config::parse_config(deepspeed::config::load_json_file(config_path), config_path, world);
  zero::ModelShape model;
  std::optional<zero::TransformerShape> decoder;
  if (!transformer.empty()) {
    decoder = parse_transformer(transformer, checkpointing, config);
    model = transformer_model(*decoder, config.zero.stage);
  } else if (shapes.empty()) {
    model.numels = {static_cast<std::int64_t>(params)};
  } else {
    model.groups = read_shapes(shapes);
    for (const auto& g : model.groups) model.numels.insert(model.numels.end(), g.begin(), g.end());
    if (model.groups.size() == 1) model.groups.clear();
  }
  if (largest_unit > 0 || !decoder) model.largest_unit = largest_unit;
  std::int64_t total = 0;
  for (auto n : model.numels) total += n;
  std::printf("deepspeed_estimate: %lld parameters, %s, %s, %d node(s) x %d GPU(s); model states per GPU between "
              "steps (no activations)\n\n", static_cast<long long>(total),
              config.bf16.enabled ? "bf16" : config.fp16.enabled ? "fp16" : "fp32",
              config.optimizer.type.empty() ? "adam" : config.optimizer.type.c_str(), nodes, gpus_per_node);
  std::printf("| stage | offload | per GPU | weights | gradients | optimizer | host per node |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  for (int stage = 0; stage <= 3; ++stage) {
    for (const char* device : {"none", "cpu"}) {
      if (stage == 0 && std::string(device) == "cpu") continue;
      for (bool params : {false, true}) {
        if (params && stage != 3) continue;  // offload_param is ZeRO-3's
        auto c = config;
        c.zero.stage = stage;
        c.zero.offload_optimizer.device = device;
        c.zero.offload_param.device = params ? "cpu" : "none";
        if (std::string(device) == "cpu" && config.zero.offload_optimizer.device == "none") c.zero.offload_optimizer.ratio = 1.0;
        std::printf("%s\n", row(c, decoder ? transformer_model(*decoder, stage) : model, world, gpus_per_node).c_str());
      }
    }
  }
  std::printf("\nThis config (stage %d, offload_optimizer %s, offload_param %s):\n%s\n", config.zero.stage,
              config.zero.offload_optimizer.device.c_str(), config.zero.offload_param.device.c_str(),
              row(config, model, world, gpus_per_node).c_str());
  if (decoder) print_activations(*decoder, config, model, world);
  if (const auto available = zero::host_memory_available(); available >= 0) {
    std::printf("This machine has %s of host memory available.\n", zero::gib(available).c_str());
  }
  return 0;
}
