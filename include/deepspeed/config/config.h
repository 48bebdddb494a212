#pragma once
/// \file
/// The typed ds_config.json. Field names, defaults and meanings are DeepSpeed's (0.16.5 code defaults, see
/// shared/reference/deepspeed.md §2); the parser in src/config/ holds each key's allowed range. Anything read
/// from the JSON is resolved and validated once, at initialize(); the engine never looks at JSON again.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "deepspeed/config/reader.h"

namespace deepspeed::config {

/// `optimizer`: {"type": ..., "params": {...}}. The type is stored lower-case for DeepSpeed's names
/// ("adam", "adamw", "sgd", "lamb"). Unset fields keep the defaults of DeepSpeed's optimizer classes.
struct OptimizerConfig {
  std::string type;                          ///< "" = no optimizer in the config
  double lr = 1e-3;                          ///< learning rate (SGD requires it; Adagrad's default is 1e-2)
  std::vector<double> betas = {0.9, 0.999};  ///< Adam/AdamW/Lamb/Lion β1, β2
  double eps = 1e-8;                         ///< Adam/AdamW/Lamb ε (Adagrad's default is 1e-10)
  double weight_decay = 0.0;                 ///< decoupled for AdamW mode and Lion, L2 for Adam (adam_w_mode=false), SGD, Adagrad
  bool adam_w_mode = true;                   ///< "Adam" means decoupled weight decay unless false
  bool torch_adam = false;                   ///< use the per-tensor (torch.optim) implementation
  bool bias_correction = true;               ///< Adam/Lamb bias correction
  bool amsgrad = false;                      ///< torch_adam only (FusedAdam rejects it)
  double momentum = 0.0;                     ///< SGD
  double dampening = 0.0;                    ///< SGD
  bool nesterov = false;                     ///< SGD
  double max_coeff = 10.0;                   ///< Lamb trust-ratio upper clamp
  double min_coeff = 0.01;                   ///< Lamb trust-ratio lower clamp
};

/// `scheduler`: {"type": ..., "params": {...}}; DeepSpeed's five schedules (runtime/lr_schedules.py).
struct SchedulerConfig {
  std::string type;  ///< "" = none; WarmupLR, WarmupDecayLR, WarmupCosineLR, OneCycle, LRRangeTest
  // Lists hold one value per parameter group; a single value (a JSON number) applies to every group.
  // WarmupLR, WarmupDecayLR
  std::vector<double> warmup_min_lr = {0.0};
  /// Empty = not given: WarmupLR then keeps each group's optimizer lr as its max (DeepSpeed's default None);
  /// WarmupDecayLR uses 0.001.
  std::vector<double> warmup_max_lr;
  std::int64_t warmup_num_steps = 1000;  ///< > 0; the schedules use max(2, warmup_num_steps)
  std::string warmup_type = "log";  ///< "log" or "linear"
  std::int64_t total_num_steps = 0; ///< required by WarmupDecayLR and WarmupCosineLR
  // WarmupCosineLR (ratios of the optimizer's configured lr)
  double warmup_min_ratio = 0.0;
  double cos_min_ratio = 0.0001;
  // OneCycle
  std::vector<double> cycle_min_lr;  ///< required
  std::vector<double> cycle_max_lr;  ///< required
  double decay_lr_rate = 0.0;
  std::int64_t cycle_first_step_size = 2000;             ///< > 0
  std::optional<std::int64_t> cycle_second_step_size;    ///< >= 0; default: cycle_first_step_size
  std::int64_t cycle_first_stair_count = 0;              ///< 0 = continuous
  std::optional<std::int64_t> cycle_second_stair_count;  ///< default: cycle_first_stair_count
  std::int64_t decay_step_size = 0;                      ///< 0 = no decay after the cycle
  bool cycle_momentum = true;  ///< only acts on optimizers with betas (Adam family), never on SGD
  std::vector<double> cycle_min_mom = {0.8};
  std::vector<double> cycle_max_mom = {0.9};
  double decay_mom_rate = 0.0;
  // LRRangeTest
  std::vector<double> lr_range_test_min_lr = {1e-3};
  std::int64_t lr_range_test_step_size = 2000;
  double lr_range_test_step_rate = 1.0;
  bool lr_range_test_staircase = false;
  // all
  std::int64_t last_batch_iteration = -1;
};

/// `fp16` (runtime/config.py): dynamic loss scaling unless loss_scale > 0.
struct Fp16Config {
  bool enabled = false;
  bool auto_cast = false;
  double loss_scale = 0.0;  ///< 0 = dynamic
  int initial_scale_power = 16;
  int loss_scale_window = 1000;
  int hysteresis = 2;
  bool consecutive_hysteresis = false;
  double min_loss_scale = 1.0;
  bool fp16_master_weights_and_grads = false;
};

/// `bf16` (alias `bfloat16`).
struct Bf16Config {
  bool enabled = false;
  bool immediate_grad_update = false;
};

/// `zero_optimization.offload_optimizer` / `offload_param`.
struct OffloadConfig {
  std::string device = "none";  ///< none | cpu | nvme
  std::string nvme_path;
  int buffer_count = 4;
  bool pin_memory = false;
  bool pipeline_read = false;
  bool pipeline_write = false;
  bool fast_init = false;
  double ratio = 1.0;
  /// offload_optimizer only. DeepSpeed's SuperOffload switch (there: stage 3 only, and without speculation
  /// when clipping). Here, at stages 1-3: with gradient clipping, the host buckets are updated during
  /// backward as if the norm were within `gradient_clipping`, saving what they overwrite (12 bytes per
  /// element, for up to a quarter of the host state); a step that clips undoes and redoes them. Results are
  /// bit-identical either way (docs/zero.md "Speculation"). No effect without clipping (the updates already
  /// run during backward) or with fp16 (they wait for the overflow check). Experimental: faster where clipping
  /// does not trigger (3.8B, one H200: +5 %), slower while it does.
  bool super_offload = false;
  /// offload_optimizer only, with super_offload: the share of the CPU threads (OpenMP's count on the training
  /// thread) its speculative updates run on; the thread summing the landed gradients' ‖g‖² gets the rest, so
  /// the two do not oversubscribe the cores while backward goes on. (0, 1], DeepSpeed's default 0.8 (there
  /// the CPU affinity of SuperOffload's Adam worker process). Non-speculative updates use every thread.
  double cpuadam_cores_perc = 0.8;
  std::int64_t buffer_size = 100000000;
  std::int64_t max_in_cpu = 1000000000;
};

/// `zero_optimization` (runtime/zero/config.py code defaults).
struct ZeroConfig {
  int stage = 0;
  bool contiguous_gradients = true;
  bool reduce_scatter = true;
  std::int64_t reduce_bucket_size = 500000000;     ///< elements
  bool allgather_partitions = true;
  std::int64_t allgather_bucket_size = 500000000;  ///< elements
  std::optional<bool> overlap_comm;                ///< default: true iff stage 3 (see overlap())
  bool load_from_fp32_weights = true;
  bool ignore_unused_parameters = true;
  std::int64_t sub_group_size = 1000000000;
  std::int64_t stage3_prefetch_bucket_size = 50000000;
  std::int64_t stage3_param_persistence_threshold = 100000;
  std::int64_t stage3_model_persistence_threshold = INT64_MAX;
  std::int64_t stage3_max_live_parameters = 1000000000;
  std::int64_t stage3_max_reuse_distance = 1000000000;
  bool stage3_gather_16bit_weights_on_model_save = false;
  OffloadConfig offload_optimizer;
  OffloadConfig offload_param{.buffer_count = 5};

  bool overlap() const { return overlap_comm.value_or(stage == 3); }
};

/// `activation_checkpointing`.
struct ActivationCheckpointingConfig {
  bool partition_activations = false;
  bool cpu_checkpointing = false;
  bool contiguous_memory_optimization = false;
  std::optional<std::int64_t> number_checkpoints;
  bool synchronize_checkpoint_boundary = false;
  bool profile = false;
};

/// `checkpoint`.
struct CheckpointConfig {
  std::string tag_validation = "Warn";  ///< Warn | Ignore | Fail
  bool load_universal = false;
  bool use_node_local_storage = false;
};

/// `timers.throughput`.
struct ThroughputTimerConfig {
  bool enabled = true;
  bool synchronized = true;
};

/// `tensorboard` and `csv_monitor` (monitor/config.py): rank 0 writes the engine's events (loss, lr, loss
/// scale, timers) under output_path/job_name ("" → relative to the working directory, as in DeepSpeed).
struct MonitorSinkConfig {
  bool enabled = false;
  std::string output_path;
  std::string job_name = "DeepSpeedJobName";
};

/// `wandb` and `comet`: read so that their keys are checked; there is no C++ client, so enabling one only
/// produces a start-up warning pointing at the TensorBoard monitor (`wandb sync` imports its event files).
struct WandbConfig {
  bool enabled = false;
  std::optional<std::string> group, team;
  std::string project = "deepspeed";
};
struct CometConfig {
  bool enabled = false;
  std::int64_t samples_log_interval = 100;
  std::optional<std::string> project, workspace, api_key, experiment_name, experiment_key, mode;
  std::optional<bool> online;
};

/// `comms_logger` (comm/config.py): time every collective (prof_all) or those named in prof_ops.
struct CommsLoggerConfig {
  bool enabled = false;
  bool verbose = false;   ///< a line per collective as it completes
  bool prof_all = true;   ///< log every collective; false: only those in prof_ops
  bool debug = false;     ///< name records by the calling component as well as the op
  /// DeepSpeed's op names: all_reduce, broadcast, all_gather_into_tensor, reduce_scatter_tensor, barrier.
  std::vector<std::string> prof_ops;
};

/// `flops_profiler` (profiling/config.py): at `profile_step`, rank 0 prints the model's FLOPs, parameters and
/// latency, per unit to `module_depth`.
struct FlopsProfilerConfig {
  bool enabled = false;
  double recompute_fwd_factor = 0.0;  ///< fraction of the forward recomputed in backward (activation checkpointing)
  std::int64_t profile_step = 1;      ///< profiles the step run while global_steps == this (DeepSpeed's rule)
  int module_depth = -1;              ///< -1: every depth
  int top_modules = 1;                ///< modules listed per depth in the aggregated view
  bool detailed = true;               ///< also the per-module tree
  std::optional<std::string> output_file;  ///< null: standard output
};

/// The three batch sizes after DeepSpeed's rule train = micro × GAS × data-parallel world size.
struct BatchSizes {
  std::int64_t train_batch_size = 0;
  std::int64_t micro_batch_per_gpu = 0;
  std::int64_t gradient_accumulation_steps = 0;
};

/// Element type names accepted by `communication_data_type` and `data_types.grad_accum_dtype`.
enum class DType { kFloat32, kFloat16, kBFloat16 };

struct Config {
  // Batch: as written (nullopt = absent) and resolved for the world size.
  std::optional<std::int64_t> train_batch_size;
  std::optional<std::int64_t> train_micro_batch_size_per_gpu;
  std::optional<std::int64_t> gradient_accumulation_steps;
  BatchSizes batch;

  std::optional<std::int64_t> steps_per_print;  ///< None: no progress lines (DeepSpeed ≥ 0.15.4 default)
  bool wall_clock_breakdown = false;
  bool memory_breakdown = false;
  double gradient_clipping = 0.0;       ///< global L2-norm clip; 0 = off
  bool prescale_gradients = false;      ///< divide by world size before the all-reduce instead of after
  double gradient_predivide_factor = 1.0;
  std::optional<DType> communication_data_type;  ///< nullopt: the model's dtype
  std::optional<DType> grad_accum_dtype;         ///< data_types.grad_accum_dtype
  bool zero_allow_untested_optimizer = false;
  bool zero_force_ds_cpu_optimizer = true;

  OptimizerConfig optimizer;
  SchedulerConfig scheduler;
  Fp16Config fp16;
  Bf16Config bf16;
  ZeroConfig zero;
  ActivationCheckpointingConfig activation_checkpointing;
  CheckpointConfig checkpoint;
  ThroughputTimerConfig throughput_timer;
  MonitorSinkConfig tensorboard, csv_monitor;
  WandbConfig wandb;
  CometConfig comet;
  CommsLoggerConfig comms_logger;
  FlopsProfilerConfig flops_profiler;

  /// True when any monitor writes events (DeepSpeed's MonitorMaster.enabled).
  bool monitor_enabled() const { return tensorboard.enabled || csv_monitor.enabled; }

  Json json;           ///< the config as given (for the dump and checkpoints)
  std::string source;  ///< file name or "<dict>"
  std::vector<std::string> warnings;  ///< unsupported / deprecated keys found while parsing
};

/// Parses a whole config. `world_size` is the data-parallel size used for the batch triad.
/// Throws ConfigError (one line naming the source and key) on any invalid input.
Config parse_config(const Json& json, const std::string& source, int world_size);

/// DeepSpeed's batch rule: any two of the three sizes give the third; only train → GAS 1; only micro → GAS 1.
/// Errors use DeepSpeed's wording.
BatchSizes resolve_batch(std::optional<std::int64_t> train, std::optional<std::int64_t> micro,
                         std::optional<std::int64_t> gas, int world_size, const std::string& source);

/// "fp16" → DType::kFloat16 etc.; the inverse for printing.
const char* dtype_name(DType dtype);

/// DeepSpeed's configuration dump lines: "DeepSpeedEngine configuration:", sorted "  name ..... value" rows and
/// "  json = {...}". Printed by rank 0 at initialize().
std::vector<std::string> dump_lines(const Config& config);

}  // namespace deepspeed::config
