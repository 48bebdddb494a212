#pragma once
// Internal: one parser per ds_config section, each reading only its own keys.
#include "deepspeed/config/config.h"

namespace deepspeed::config {

void parse_optimizer(Section& root, OptimizerConfig& out);
void parse_scheduler(Section& root, SchedulerConfig& out);
void parse_precision(Section& root, Fp16Config& fp16, Bf16Config& bf16);
void parse_zero(Section& root, ZeroConfig& out);
/// tensorboard, csv_monitor, wandb, comet, comms_logger, flops_profiler.
void parse_monitoring(Section& root, Config& out);

/// The highest ZeRO stage this build implements; higher stages are a clear config error until they land.
inline constexpr int kMaxImplementedZeroStage = 3;

}  // namespace deepspeed::config
