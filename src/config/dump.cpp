// DeepSpeed's "DeepSpeedEngine configuration:" dump (runtime/config.py print()): sorted attribute rows padded
// with dots to column 29, then the user's JSON with sorted keys, indent 4 and "key":value separators.
#include <algorithm>
#include <cmath>
#include <utility>

#include "deepspeed/config/config.h"
#include "deepspeed/util/strings.h"

namespace deepspeed::config {

using util::cat;

namespace {

std::string py_bool(bool b) { return b ? "True" : "False"; }

template <typename T>
std::string py_optional(const std::optional<T>& v) {
  if (!v) return "None";
  if constexpr (std::is_same_v<T, bool>) return py_bool(*v);
  else return cat(*v);
}

std::string py_value(const Json& v);

std::string py_dict(const Json& object) {
  std::string out = "{";
  bool first = true;
  for (const auto& [key, value] : object.items()) {
    out += cat(first ? "" : ", ", "'", key, "': ", py_value(value));
    first = false;
  }
  return out + "}";
}

std::string py_value(const Json& v) {
  if (v.is_null()) return "None";
  if (v.is_boolean()) return py_bool(v.get<bool>());
  if (v.is_number_float()) return util::py_float(v.get<double>());
  if (v.is_number()) return v.dump();
  if (v.is_string()) return "'" + v.get<std::string>() + "'";
  if (v.is_object()) return py_dict(v);
  std::string out = "[";
  for (std::size_t i = 0; i < v.size(); ++i) out += cat(i ? ", " : "", py_value(v[i]));
  return out + "]";
}

void dump_json(const Json& v, int indent, std::string& out) {
  const std::string pad(static_cast<std::size_t>(indent + 4), ' ');
  if (v.is_object() && !v.empty()) {
    out += "{\n";
    std::size_t i = 0;
    for (const auto& [key, value] : v.items()) {
      out += pad + Json(key).dump() + ":";
      dump_json(value, indent + 4, out);
      out += ++i < v.size() ? ",\n" : "\n";
    }
    out += std::string(static_cast<std::size_t>(indent), ' ') + "}";
  } else if (v.is_array() && !v.empty()) {
    out += "[\n";
    for (std::size_t i = 0; i < v.size(); ++i) {
      out += pad;
      dump_json(v[i], indent + 4, out);
      out += i + 1 < v.size() ? ",\n" : "\n";
    }
    out += std::string(static_cast<std::size_t>(indent), ' ') + "]";
  } else if (v.is_number_float()) {
    out += util::py_float(v.get<double>());
  } else {
    out += v.dump();
  }
}

// 2**p as Python prints it: an int.
std::string power_of_two(int p) { return p < 63 ? std::to_string(1LL << p) : util::py_float(std::ldexp(1.0, p)); }

std::string optional_dtype(const std::optional<DType>& d) { return d ? dtype_name(*d) : "None"; }

std::string zero_repr(const ZeroConfig& z) {
  return cat("stage=", z.stage, " contiguous_gradients=", py_bool(z.contiguous_gradients),
             " reduce_scatter=", py_bool(z.reduce_scatter), " reduce_bucket_size=", z.reduce_bucket_size,
             " allgather_partitions=", py_bool(z.allgather_partitions),
             " allgather_bucket_size=", z.allgather_bucket_size, " overlap_comm=", py_bool(z.overlap()),
             " load_from_fp32_weights=", py_bool(z.load_from_fp32_weights),
             " offload_param=", z.offload_param.device == "none" ? "None" : z.offload_param.device,
             " offload_optimizer=", z.offload_optimizer.device == "none" ? "None" : z.offload_optimizer.device,
             " sub_group_size=", z.sub_group_size,
             " prefetch_bucket_size=", z.stage3_prefetch_bucket_size,
             " param_persistence_threshold=", z.stage3_param_persistence_threshold,
             " max_live_parameters=", z.stage3_max_live_parameters,
             " max_reuse_distance=", z.stage3_max_reuse_distance,
             " gather_16bit_weights_on_model_save=", py_bool(z.stage3_gather_16bit_weights_on_model_save));
}

}  // namespace

std::vector<std::string> dump_lines(const Config& c) {
  const Json empty = Json::object();
  const Json* optimizer_params = c.json.contains("optimizer") && c.json["optimizer"].contains("params")
                                     ? &c.json["optimizer"]["params"] : &empty;
  const Json* scheduler_params = c.json.contains("scheduler") && c.json["scheduler"].contains("params")
                                     ? &c.json["scheduler"]["params"] : &empty;
  std::vector<std::pair<std::string, std::string>> rows = {
      {"activation_checkpointing_config",
       cat("{\"partition_activations\": ", c.activation_checkpointing.partition_activations ? "true" : "false",
           ", \"contiguous_memory_optimization\": ",
           c.activation_checkpointing.contiguous_memory_optimization ? "true" : "false",
           ", \"cpu_checkpointing\": ", c.activation_checkpointing.cpu_checkpointing ? "true" : "false",
           ", \"number_checkpoints\": ", c.activation_checkpointing.number_checkpoints
                                             ? std::to_string(*c.activation_checkpointing.number_checkpoints) : "null",
           ", \"synchronize_checkpoint_boundary\": ",
           c.activation_checkpointing.synchronize_checkpoint_boundary ? "true" : "false",
           ", \"profile\": ", c.activation_checkpointing.profile ? "true" : "false", "}")},
      {"bfloat16_enabled", py_bool(c.bf16.enabled)},
      {"bfloat16_immediate_grad_update", py_bool(c.bf16.immediate_grad_update)},
      {"checkpoint_tag_validation_enabled", py_bool(c.checkpoint.tag_validation != "Ignore")},
      {"checkpoint_tag_validation_fail", py_bool(c.checkpoint.tag_validation == "Fail")},
      {"communication_data_type", optional_dtype(c.communication_data_type)},
      {"dynamic_loss_scale_args",
       c.fp16.enabled && c.fp16.loss_scale == 0
           ? cat("{'init_scale': ", power_of_two(c.fp16.initial_scale_power), ", 'scale_window': ", c.fp16.loss_scale_window,
                 ", 'delayed_shift': ", c.fp16.hysteresis, ", 'consecutive_hysteresis': ",
                 py_bool(c.fp16.consecutive_hysteresis), ", 'min_scale': ", util::py_float(c.fp16.min_loss_scale), "}")
           : std::string("None")},
      {"fp16_auto_cast", c.fp16.enabled ? py_bool(c.fp16.auto_cast) : "None"},
      {"fp16_enabled", py_bool(c.fp16.enabled)},
      {"fp16_master_weights_and_gradients", py_bool(c.fp16.fp16_master_weights_and_grads)},
      {"grad_accum_dtype", optional_dtype(c.grad_accum_dtype)},
      {"gradient_accumulation_steps", cat(c.batch.gradient_accumulation_steps)},
      {"gradient_clipping", util::py_float(c.gradient_clipping)},
      {"gradient_predivide_factor", util::py_float(c.gradient_predivide_factor)},
      {"initial_dynamic_scale", power_of_two(c.fp16.initial_scale_power)},
      {"load_universal_checkpoint", py_bool(c.checkpoint.load_universal)},
      {"loss_scale", util::py_float(c.fp16.loss_scale)},
      {"optimizer_name", c.optimizer.type.empty() ? "None" : c.optimizer.type},
      {"optimizer_params", c.optimizer.type.empty() ? "None" : py_dict(*optimizer_params)},
      {"prescale_gradients", py_bool(c.prescale_gradients)},
      {"scheduler_name", c.scheduler.type.empty() ? "None" : c.scheduler.type},
      {"scheduler_params", c.scheduler.type.empty() ? "None" : py_dict(*scheduler_params)},
      {"steps_per_print", py_optional(c.steps_per_print)},
      {"timers_config", cat("enabled=", py_bool(c.throughput_timer.enabled),
                            " synchronized=", py_bool(c.throughput_timer.synchronized))},
      {"train_batch_size", cat(c.batch.train_batch_size)},
      {"train_micro_batch_size_per_gpu", cat(c.batch.micro_batch_per_gpu)},
      {"use_node_local_storage", py_bool(c.checkpoint.use_node_local_storage)},
      {"wall_clock_breakdown", py_bool(c.wall_clock_breakdown)},
      {"zero_allow_untested_optimizer", py_bool(c.zero_allow_untested_optimizer)},
      {"zero_config", zero_repr(c.zero)},
      {"zero_enabled", py_bool(c.zero.stage > 0)},
      {"zero_force_ds_cpu_optimizer", py_bool(c.zero_force_ds_cpu_optimizer)},
      {"zero_optimization_stage", cat(c.zero.stage)},
  };
  std::sort(rows.begin(), rows.end());
  std::vector<std::string> lines = {"DeepSpeedEngine configuration:"};
  for (const auto& [name, value] : rows) {
    const std::size_t dots = name.size() < 29 ? 29 - name.size() : 0;
    lines.push_back(cat("  ", name, " ", std::string(dots, '.'), " ", value));
  }
  std::string json_text;
  dump_json(c.json, 0, json_text);
  lines.push_back("  json = " + json_text);
  return lines;
}

}  // namespace deepspeed::config
