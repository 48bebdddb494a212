// Top-level ds_config.json parsing: scalar keys, the small sections, and the list of DeepSpeed features this
// build does not implement (a warning naming them, never silence).
#include "src/config/sections.h"

#include "deepspeed/util/strings.h"

namespace deepspeed::config {

using util::cat;

namespace {

std::optional<DType> to_dtype(const std::optional<std::string>& name) {
  if (!name) return std::nullopt;
  if (*name == "fp16") return DType::kFloat16;
  if (*name == "bf16") return DType::kBFloat16;
  return DType::kFloat32;
}

void parse_small_sections(Section& root, Config& c) {
  Section ac = root.child("activation_checkpointing");
  ac.read("partition_activations", c.activation_checkpointing.partition_activations);
  ac.read("cpu_checkpointing", c.activation_checkpointing.cpu_checkpointing);
  ac.read("contiguous_memory_optimization", c.activation_checkpointing.contiguous_memory_optimization);
  ac.read("number_checkpoints", c.activation_checkpointing.number_checkpoints, Range{.min = 1.0});
  ac.read("synchronize_checkpoint_boundary", c.activation_checkpointing.synchronize_checkpoint_boundary);
  ac.read("profile", c.activation_checkpointing.profile);
  ac.finish();

  Section ck = root.child("checkpoint");
  ck.read_choice("tag_validation", c.checkpoint.tag_validation, {"Warn", "Ignore", "Fail"}, /*ignore_case=*/true);
  ck.read("load_universal", c.checkpoint.load_universal);
  ck.read("use_node_local_storage", c.checkpoint.use_node_local_storage);
  ck.unsupported("parallel_write");
  ck.unsupported("writer");
  ck.finish();

  Section timers = root.child("timers");
  Section tput = timers.child("throughput");
  tput.read("enabled", c.throughput_timer.enabled);
  tput.read("synchronized", c.throughput_timer.synchronized);
  tput.finish();
  timers.finish();

  Section types = root.child("data_types");
  std::optional<std::string> grad_accum;
  types.read("grad_accum_dtype", grad_accum, {"fp32", "fp16", "bf16"});
  c.grad_accum_dtype = to_dtype(grad_accum);
  types.finish();
}

}  // namespace

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kFloat16: return "fp16";
    case DType::kBFloat16: return "bf16";
    case DType::kFloat32: return "fp32";
  }
  return "fp32";
}

Config parse_config(const Json& json, const std::string& source, int world_size) {
  Config c;
  c.json = json;
  c.source = source;
  Diagnostics diagnostics{.source = source, .warnings = {}};
  Section root(&c.json, "", &diagnostics);

  const Range positive{.min = 0.0, .above = true};
  root.read("train_batch_size", c.train_batch_size, positive);
  root.read("train_micro_batch_size_per_gpu", c.train_micro_batch_size_per_gpu, positive);
  root.read("gradient_accumulation_steps", c.gradient_accumulation_steps, positive);
  root.read("steps_per_print", c.steps_per_print, positive);
  root.read("wall_clock_breakdown", c.wall_clock_breakdown);
  root.read("memory_breakdown", c.memory_breakdown);
  if (c.memory_breakdown && !c.steps_per_print) {
    diagnostics.warnings.push_back(cat(source, ": memory_breakdown: the figures ride on the step lines, and "
                                               "steps_per_print is not set, so none are printed; set steps_per_print"));
  }
  root.read("gradient_clipping", c.gradient_clipping, Range{.min = 0.0});
  root.read("prescale_gradients", c.prescale_gradients);
  root.read("gradient_predivide_factor", c.gradient_predivide_factor, positive);
  std::optional<std::string> comm_type;
  root.read("communication_data_type", comm_type, {"fp16", "bf16", "fp32"});
  c.communication_data_type = to_dtype(comm_type);
  root.read("zero_allow_untested_optimizer", c.zero_allow_untested_optimizer);
  root.read("zero_force_ds_cpu_optimizer", c.zero_force_ds_cpu_optimizer);

  parse_optimizer(root, c.optimizer);
  parse_scheduler(root, c.scheduler);
  parse_precision(root, c.fp16, c.bf16);
  parse_zero(root, c.zero);
  parse_small_sections(root, c);
  parse_monitoring(root, c);

  // DeepSpeed features not implemented here. Present (and not {"enabled": false}) → a warning naming them.
  for (const char* key :
       {"dump_state", "sparse_gradients", "amp", "elasticity", "autotuning", "pipeline", "data_efficiency",
        "curriculum_learning", "compression_training", "sparse_attention", "progressive_layer_drop",
        "tensor_parallel", "hybrid_engine", "aio", "eigenvalue", "quantize_training", "nebula",
        "dataloader_drop_last", "disable_allgather", "seq_parallel_communication_data_type", "graph_harvesting",
        "compile", "torch_autocast", "weight_quantization", "expert_data_topo", "gradient_allreduce_op",
        "use_data_before_expert_parallelism", "optimizer_legacy_fusion", "zenflow", "log_level",
        "managed_gradient_accumulation", "lower_precision_safe_modules"}) {
    root.unsupported(key);
  }
  root.finish();

  c.batch = resolve_batch(c.train_batch_size, c.train_micro_batch_size_per_gpu, c.gradient_accumulation_steps,
                          world_size, source);
  c.warnings = std::move(diagnostics.warnings);
  return c;
}

}  // namespace deepspeed::config
