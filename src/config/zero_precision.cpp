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
  }
  if (out.device == "nvme" && out.nvme_path.empty()) offload.fail("nvme_path", "required when device is \"nvme\"");
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
    z.read("round_robin_gradients", out.round_robin_gradients);
    z.read("ignore_unused_parameters", out.ignore_unused_parameters);
    z.read("sub_group_size", out.sub_group_size, Range{.min = 1.0});
    z.read("stage3_prefetch_bucket_size", out.stage3_prefetch_bucket_size, Range{.min = 0.0});
    z.read("stage3_param_persistence_threshold", out.stage3_param_persistence_threshold, Range{.min = 0.0});
    z.read("stage3_model_persistence_threshold", out.stage3_model_persistence_threshold, Range{.min = 0.0});
    z.read("stage3_max_live_parameters", out.stage3_max_live_parameters, Range{.min = 0.0});
    z.read("stage3_max_reuse_distance", out.stage3_max_reuse_distance, Range{.min = 0.0});
    z.read("stage3_gather_16bit_weights_on_model_save", out.stage3_gather_16bit_weights_on_model_save);
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
    for (const char* key : {"stage3_module_granularity_threshold", "stage3_use_all_reduce_for_fetch_params",
                            "use_multi_rank_bucket_allreduce", "zero_hpz_partition_size", "zero_quantized_weights",
                            "zero_quantized_nontrainable_weights", "zero_quantized_gradients", "zeropp_loco_param",
                            "mics_shard_size", "mics_hierarchical_params_gather", "memory_efficient_linear",
                            "pipeline_loading_checkpoint", "override_module_apply", "elastic_checkpoint",
                            "legacy_stage1", "log_trace_cache_warnings", "gather_16bit_weights_on_model_save"}) {
      // zero_hpz_partition_size 1 and mics_shard_size -1 are DeepSpeed's "off" values; warn only on others.
      const Json* v = z.raw(key);
      if (!v) continue;
      const bool off = (v->is_boolean() && !v->get<bool>()) || v->is_null() ||
                       (std::string(key) == "zero_hpz_partition_size" && *v == 1) ||
                       (std::string(key) == "mics_shard_size" && *v == -1) ||
                       (std::string(key) == "stage3_module_granularity_threshold" && *v == 0);
      if (!off) z.unsupported(key);
    }
    z.finish();
  }
  if (out.stage > kMaxImplementedZeroStage) {
    throw ConfigError(cat(root.diagnostics().source, ": zero_optimization.stage: ZeRO stage ", out.stage,
                          " is not supported yet by deepspeed.cpp (this build implements stages 0-",
                          kMaxImplementedZeroStage, ")"));
  }
  if (out.offload_optimizer.device != "none" || out.offload_param.device != "none") {
    throw ConfigError(cat(root.diagnostics().source,
                          ": zero_optimization.offload_*: ZeRO-Offload is not supported yet by deepspeed.cpp"));
  }
}

}  // namespace deepspeed::config
