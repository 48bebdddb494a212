// Parsing of `zero_optimization` (with its offload subsections) and of `fp16` / `bf16`.
#include "src/config/sections.h"

#include "deepspeed/util/strings.h"

namespace deepspeed::config {

using util::cat;

namespace {

void parse_offload(Section offload, OffloadConfig& out, bool is_param) {
  if (!offload.present()) return;
  offload.read_choice("device", out.device, {"none", "cpu", "nvme"});
  offload.read("nvme_path", out.nvme_path);
  offload.read("buffer_count", out.buffer_count, Range{.min = 1.0});
  offload.read("pin_memory", out.pin_memory);
  if (is_param) {
    offload.read("buffer_size", out.buffer_size, Range{.min = 1.0});
    offload.read("max_in_cpu", out.max_in_cpu, Range{.min = 0.0});
  } else {
    offload.read("pipeline_read", out.pipeline_read);
    offload.read("pipeline_write", out.pipeline_write);
    offload.read("fast_init", out.fast_init);
    offload.read("ratio", out.ratio, Range{.min = 0.0, .max = 1.0});
    // Gradients are always converted on the host here (fp32 accumulation); both settings mean the same.
    bool convert_grad_on_cpu = true;
    offload.read("convert_grad_on_cpu", convert_grad_on_cpu);
    offload.read("super_offload", out.super_offload);
    // DeepSpeed ignores it without an offloaded optimizer; a setting that can do nothing is a mistake here.
    if (out.super_offload && out.device != "cpu") offload.fail("super_offload", "needs device \"cpu\"");
    offload.read("cpuadam_cores_perc", out.cpuadam_cores_perc, Range{.min = 0.0, .max = 1.0, .above = true});
  }
  if (out.device == "nvme" && out.nvme_path.empty()) offload.fail("nvme_path", "required when device is \"nvme\"");
  if (out.device == "nvme") {
    offload.fail("device", "\"nvme\" (ZeRO-Infinity) is not implemented yet by deepspeed.cpp; use \"cpu\"");
  }
  offload.finish();
}

}  // namespace

void parse_precision(Section& root, Fp16Config& fp16, Bf16Config& bf16) {
  Section f = root.child("fp16");
  f.read("enabled", fp16.enabled);
  f.read("auto_cast", fp16.auto_cast);
  f.read("loss_scale", fp16.loss_scale, Range{.min = 0.0});
  f.read("initial_scale_power", fp16.initial_scale_power, Range{.min = 0.0, .max = 64.0});
  f.read("loss_scale_window", fp16.loss_scale_window, Range{.min = 1.0});
  f.read("hysteresis", fp16.hysteresis, Range{.min = 1.0});
  f.read("consecutive_hysteresis", fp16.consecutive_hysteresis);
  f.read("min_loss_scale", fp16.min_loss_scale, Range{.min = 0.0, .above = true});
  f.read("fp16_master_weights_and_grads", fp16.fp16_master_weights_and_grads);
  f.finish();

  // "bfloat16" is DeepSpeed's older spelling of the same section.
  const bool has_bf16 = root.has("bf16");
  Section b = root.child(has_bf16 ? "bf16" : "bfloat16");
  if (has_bf16) root.has("bfloat16");  // mark the alias known so a config with both still parses
  b.read("enabled", bf16.enabled);
  b.read("immediate_grad_update", bf16.immediate_grad_update);
  b.unsupported("check_grad_overflow");
  b.unsupported("bf16_master_weights_and_grads");
  b.unsupported("bf16_optimizer_states");
  b.finish();

  if (fp16.enabled && bf16.enabled) root.fail("bf16", "bfloat16 and fp16 modes cannot be simultaneously enabled");
}

void parse_zero(Section& root, ZeroConfig& out) {
  // `"zero_optimization": true|false` is DeepSpeed's legacy form meaning stage 1 / off.
  if (const Json* v = root.raw("zero_optimization"); v && v->is_boolean()) {
    out.stage = v->get<bool>() ? 1 : 0;
    root.diagnostics().warnings.push_back(cat(root.diagnostics().source,
                                              ": \"zero_optimization\": true/false is deprecated; use "
                                              "{\"stage\": N}"));
  } else {
    Section z = root.child("zero_optimization");
    z.read("stage", out.stage, Range{.min = 0.0, .max = 3.0});
    z.read("contiguous_gradients", out.contiguous_gradients);
    z.read("reduce_scatter", out.reduce_scatter);
    z.read("reduce_bucket_size", out.reduce_bucket_size, Range{.min = 1.0});
    z.read("allgather_partitions", out.allgather_partitions);
    z.read("allgather_bucket_size", out.allgather_bucket_size, Range{.min = 1.0});
    z.read("overlap_comm", out.overlap_comm);
    z.read("load_from_fp32_weights", out.load_from_fp32_weights);
    z.read("ignore_unused_parameters", out.ignore_unused_parameters);
    z.read("sub_group_size", out.sub_group_size, Range{.min = 1.0});
    // DeepSpeed's pydantic model accepts both the stage3_ aliases and the field names.
    const auto either = [&z](const char* alias, const char* field, auto& out, Range range) {
      if (z.has(alias) && z.has(field)) z.fail(field, std::string("given twice, also as ") + alias);
      z.read(alias, out, range);
      z.read(field, out, range);
    };
    either("stage3_prefetch_bucket_size", "prefetch_bucket_size", out.stage3_prefetch_bucket_size, Range{.min = 0.0});
    either("stage3_param_persistence_threshold", "param_persistence_threshold", out.stage3_param_persistence_threshold,
           Range{.min = 0.0});
    either("stage3_model_persistence_threshold", "model_persistence_threshold", out.stage3_model_persistence_threshold,
           Range{.min = 0.0});
    either("stage3_max_live_parameters", "max_live_parameters", out.stage3_max_live_parameters, Range{.min = 0.0});
    either("stage3_max_reuse_distance", "max_reuse_distance", out.stage3_max_reuse_distance, Range{.min = 0.0});
    if (z.has("stage3_gather_16bit_weights_on_model_save") && z.has("gather_16bit_weights_on_model_save")) {
      z.fail("gather_16bit_weights_on_model_save", "given twice, also as stage3_gather_16bit_weights_on_model_save");
    }
    z.read("stage3_gather_16bit_weights_on_model_save", out.stage3_gather_16bit_weights_on_model_save);
    z.read("gather_16bit_weights_on_model_save", out.stage3_gather_16bit_weights_on_model_save);
    parse_offload(z.child("offload_optimizer"), out.offload_optimizer, false);
    parse_offload(z.child("offload_param"), out.offload_param, true);

    if (const Json* v = z.deprecated("stage3_gather_fp16_weights_on_model_save", "stage3_gather_16bit_weights_on_model_save")) {
      z.read("stage3_gather_fp16_weights_on_model_save", out.stage3_gather_16bit_weights_on_model_save);
      (void)v;
    }
    if (z.deprecated("cpu_offload", "offload_optimizer.device = \"cpu\"")) {
      bool on = false;
      z.read("cpu_offload", on);
      if (on) out.offload_optimizer.device = "cpu";
    }
    if (z.deprecated("cpu_offload_param", "offload_param.device = \"cpu\"")) {
      bool on = false;
      z.read("cpu_offload_param", on);
      if (on) out.offload_param.device = "cpu";
    }
    if (z.deprecated("cpu_offload_use_pin_memory", "offload_optimizer.pin_memory / offload_param.pin_memory")) {
      bool on = false;
      z.read("cpu_offload_use_pin_memory", on);
      out.offload_optimizer.pin_memory = out.offload_param.pin_memory = on;
    }
    // Present with anything but DeepSpeed's own default → a warning naming them.
    const std::vector<std::pair<const char*, Json>> not_implemented = {
        {"stage3_module_granularity_threshold", 0}, {"module_granularity_threshold", 0},
        {"stage3_use_all_reduce_for_fetch_params", false}, {"use_all_reduce_for_fetch_params", false},
        {"use_multi_rank_bucket_allreduce", true}, {"zero_hpz_partition_size", 1}, {"zero_quantized_weights", false},
        {"zero_quantized_nontrainable_weights", false}, {"zero_quantized_gradients", false},
        {"zeropp_loco_param", nullptr}, {"mics_shard_size", -1}, {"mics_hierarchical_params_gather", false},
        {"memory_efficient_linear", true}, {"pipeline_loading_checkpoint", false}, {"override_module_apply", true},
        {"elastic_checkpoint", false}, {"legacy_stage1", false}, {"log_trace_cache_warnings", false},
        {"zenflow", nullptr}, {"round_robin_gradients", false}};
    for (const auto& [key, deepspeed_default] : not_implemented) z.unsupported_unless(key, deepspeed_default);
    z.finish();
  }
  if (out.stage > kMaxImplementedZeroStage) {
    throw ConfigError(cat(root.diagnostics().source, ": zero_optimization.stage: ZeRO stage ", out.stage,
                          " is not supported yet by deepspeed.cpp (highest available: ", kMaxImplementedZeroStage, ")"));
  }
  const std::string& source = root.diagnostics().source;
  if (out.offload_optimizer.device != "none" && out.stage == 0) {
    throw ConfigError(cat(source, ": zero_optimization.offload_optimizer: needs ZeRO stage 1, 2 or 3 (stage is 0)"));
  }
  if (out.offload_param.device != "none" && out.stage != 3) {
    throw ConfigError(cat(source, ": zero_optimization.offload_param: needs ZeRO stage 3 (stage is ", out.stage, ")"));
  }
}

}  // namespace deepspeed::config
