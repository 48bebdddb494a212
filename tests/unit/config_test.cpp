// ds_config.json parsing: DeepSpeed's keys, defaults and rules, and our one-line errors.
#include <gtest/gtest.h>

#include "deepspeed/config/config.h"

using deepspeed::ConfigError;
using deepspeed::config::Json;
using deepspeed::config::parse_config;
using deepspeed::config::parse_json_text;

namespace {

deepspeed::config::Config parse(const std::string& text, int world_size = 1) {
  return parse_config(parse_json_text(text, "ds_config.json"), "ds_config.json", world_size);
}

// The error message of parsing `text`, or "" if it parsed.
std::string error_of(const std::string& text, int world_size = 1) {
  try {
    parse(text, world_size);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(ConfigTest, DefaultsMatchDeepSpeed) {
  const auto c = parse(R"({"train_batch_size": 8})");
  EXPECT_EQ(c.batch.train_batch_size, 8);
  EXPECT_EQ(c.batch.micro_batch_per_gpu, 8);
  EXPECT_EQ(c.batch.gradient_accumulation_steps, 1);
  EXPECT_FALSE(c.steps_per_print.has_value());  // None since DeepSpeed 0.15.4
  EXPECT_EQ(c.gradient_clipping, 0.0);
  EXPECT_EQ(c.gradient_predivide_factor, 1.0);
  EXPECT_FALSE(c.prescale_gradients);
  EXPECT_FALSE(c.wall_clock_breakdown);
  EXPECT_EQ(c.zero.stage, 0);
  EXPECT_EQ(c.zero.reduce_bucket_size, 500000000);
  EXPECT_EQ(c.zero.stage3_prefetch_bucket_size, 50000000);
  EXPECT_FALSE(c.zero.overlap());
  EXPECT_EQ(c.fp16.initial_scale_power, 16);
  EXPECT_EQ(c.fp16.loss_scale_window, 1000);
  EXPECT_EQ(c.fp16.hysteresis, 2);
  EXPECT_EQ(c.fp16.min_loss_scale, 1.0);
  EXPECT_TRUE(c.optimizer.type.empty());
  EXPECT_TRUE(c.scheduler.type.empty());
}

TEST(ConfigTest, BatchTriadAnyTwoGiveTheThird) {
  auto c = parse(R"({"train_batch_size": 32, "train_micro_batch_size_per_gpu": 4})", 2);
  EXPECT_EQ(c.batch.gradient_accumulation_steps, 4);
  c = parse(R"({"train_batch_size": 32, "gradient_accumulation_steps": 2})", 4);
  EXPECT_EQ(c.batch.micro_batch_per_gpu, 4);
  c = parse(R"({"train_micro_batch_size_per_gpu": 3, "gradient_accumulation_steps": 5})", 3);
  EXPECT_EQ(c.batch.train_batch_size, 45);
  c = parse(R"({"train_micro_batch_size_per_gpu": 3})", 2);
  EXPECT_EQ(c.batch.train_batch_size, 6);
  EXPECT_EQ(c.batch.gradient_accumulation_steps, 1);
  c = parse(R"({"train_batch_size": 12, "train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 2})", 3);
  EXPECT_EQ(c.batch.train_batch_size, 12);
}

TEST(ConfigTest, BatchTriadMismatchUsesDeepSpeedWording) {
  const auto e = error_of(R"({"train_batch_size": 8, "train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 1})");
  EXPECT_NE(e.find("Check batch related parameters. train_batch_size is not equal to micro_batch_per_gpu * "
                   "gradient_acc_step * world_size 8 != 2 * 1 * 1"), std::string::npos) << e;
  // Integer division leaves a remainder: DeepSpeed derives GAS 1 and then fails the check.
  EXPECT_NE(error_of(R"({"train_batch_size": 10, "train_micro_batch_size_per_gpu": 4})").find("10 != 4 * 2 * 1"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"gradient_accumulation_steps": 2})")
                .find("Either train_batch_size or train_micro_batch_size_per_gpu needs to be provided"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"train_batch_size": 3})", 4).find("Micro batch size per gpu: 0 has to be greater than 0"),
            std::string::npos);
}

TEST(ConfigTest, UnknownKeyNamesPathAndClosestKey) {
  auto e = error_of(R"({"train_batch_size": 8, "zero_optimization": {"stgae": 0}})");
  EXPECT_EQ(e, "ds_config.json: zero_optimization.stgae: unknown key (did you mean \"zero_optimization.stage\"?)");
  e = error_of(R"({"train_batch_sise": 8})");
  EXPECT_NE(e.find("train_batch_sise: unknown key (did you mean \"train_batch_size\"?)"), std::string::npos) << e;
  e = error_of(R"({"train_batch_size": 8, "optimizer": {"type": "Adam", "params": {"betas1": [0.9, 0.99]}}})");
  EXPECT_NE(e.find("optimizer.params.betas1: unknown key (did you mean \"optimizer.params.betas\"?)"), std::string::npos) << e;
  e = error_of(R"({"train_batch_size": 8, "completely_unrelated": 1})");
  EXPECT_EQ(e, "ds_config.json: completely_unrelated: unknown key");
}

TEST(ConfigTest, AutoValueIsAnError) {
  const auto e = error_of(R"({"train_batch_size": "auto"})");
  EXPECT_NE(e.find("ds_config.json: train_batch_size: \"auto\" is filled in by tools that wrap DeepSpeed"),
            std::string::npos) << e;
  EXPECT_NE(error_of(R"({"train_batch_size": 8, "optimizer": {"type": "AdamW", "params": {"lr": "auto"}}})")
                .find("optimizer.params.lr: \"auto\""), std::string::npos);
}

TEST(ConfigTest, UnimplementedDeepSpeedKeysWarn) {
  const auto c = parse(R"({"train_batch_size": 8, "pipeline": {"stages": 2}, "dump_state": false,
                           "zero_optimization": {"stage": 0, "zero_quantized_weights": true}})");
  ASSERT_EQ(c.warnings.size(), 2u);
  EXPECT_NE(c.warnings[0].find("zero_optimization.zero_quantized_weights"), std::string::npos);
  EXPECT_NE(c.warnings[1].find("pipeline is a DeepSpeed setting that deepspeed.cpp does not implement yet"),
            std::string::npos) << c.warnings[1];
}

TEST(ConfigTest, MonitoringSections) {
  const auto d = parse(R"({"train_batch_size": 8})");
  EXPECT_FALSE(d.monitor_enabled());
  EXPECT_EQ(d.tensorboard.job_name, "DeepSpeedJobName");
  EXPECT_EQ(d.csv_monitor.output_path, "");
  EXPECT_TRUE(d.comms_logger.prof_all);
  EXPECT_EQ(d.flops_profiler.profile_step, 1);
  EXPECT_EQ(d.flops_profiler.module_depth, -1);
  EXPECT_TRUE(d.flops_profiler.detailed);

  const auto c = parse(R"({"train_batch_size": 8, "memory_breakdown": true, "steps_per_print": 10,
      "tensorboard": {"enabled": true, "output_path": "logs", "job_name": "run1"},
      "csv_monitor": {"enabled": false},
      "comms_logger": {"enabled": true, "prof_all": false, "prof_ops": ["all_reduce", "reduce_scatter_tensor"]},
      "flops_profiler": {"enabled": true, "profile_step": 3, "module_depth": 2, "output_file": null}})");
  EXPECT_TRUE(c.warnings.empty()) << c.warnings.front();
  EXPECT_TRUE(c.monitor_enabled());
  // memory_breakdown prints on the step lines: without steps_per_print it would print nothing, so it warns.
  const auto quiet = parse(R"({"train_batch_size": 8, "memory_breakdown": true})");
  ASSERT_EQ(quiet.warnings.size(), 1u);
  EXPECT_NE(quiet.warnings[0].find("memory_breakdown: the figures ride on the step lines"), std::string::npos)
      << quiet.warnings[0];
  EXPECT_TRUE(c.memory_breakdown);
  EXPECT_EQ(c.tensorboard.output_path, "logs");
  EXPECT_EQ(c.tensorboard.job_name, "run1");
  EXPECT_EQ(c.comms_logger.prof_ops, (std::vector<std::string>{"all_reduce", "reduce_scatter_tensor"}));
  EXPECT_EQ(c.flops_profiler.profile_step, 3);
  EXPECT_FALSE(c.flops_profiler.output_file.has_value());

  // No client: a warning that says what to do instead, and the run goes on.
  const auto w = parse(R"({"train_batch_size": 8, "wandb": {"enabled": true, "project": "p"}})");
  ASSERT_EQ(w.warnings.size(), 1u);
  EXPECT_NE(w.warnings[0].find("wandb sync"), std::string::npos) << w.warnings[0];

  // DeepSpeed's monitor sections forbid extra keys; so do we (all sections).
  EXPECT_EQ(error_of(R"({"train_batch_size": 8, "tensorboard": {"enabled": true, "outputpath": "x"}})"),
            "ds_config.json: tensorboard.outputpath: unknown key (did you mean \"tensorboard.output_path\"?)");
  EXPECT_EQ(error_of(R"({"train_batch_size": 8, "comms_logger": {"enabled": true, "prof_ops": ["all_gather"]}})"),
            "ds_config.json: comms_logger.prof_ops: unknown collective \"all_gather\"; expected some of all_reduce, "
            "broadcast, all_gather_into_tensor, reduce_scatter_tensor, barrier (did you mean \"all_gather_into_tensor\"?)");
  EXPECT_EQ(error_of(R"({"train_batch_size": 8, "flops_profiler": {"profile_step": 0}})"),
            "ds_config.json: flops_profiler.profile_step: expected an integer >= 1, got 0");
}

TEST(ConfigTest, CommentsAcceptedDuplicatesRejected) {
  const auto c = parse("{\n // batch\n \"train_batch_size\": 4, /* block */ \"steps_per_print\": 10\n}");
  EXPECT_EQ(*c.steps_per_print, 10);
  const auto e = error_of(R"({"train_batch_size": 4, "optimizer": {"type": "SGD", "params": {"lr": 1, "lr": 2}}})");
  EXPECT_EQ(e, "ds_config.json: optimizer.params.lr: duplicate key");
  EXPECT_NE(error_of("{\"train_batch_size\": 4,}").find("ds_config.json: not valid JSON"), std::string::npos);
}

TEST(ConfigTest, TypeAndRangeErrors) {
  EXPECT_EQ(error_of(R"({"train_batch_size": 8, "gradient_clipping": -1})"),
            "ds_config.json: gradient_clipping: expected a number >= 0.0, got -1");
  EXPECT_EQ(error_of(R"({"train_batch_size": 8, "wall_clock_breakdown": "yes"})"),
            "ds_config.json: wall_clock_breakdown: expected true or false, got \"yes\"");
  EXPECT_EQ(error_of(R"({"train_batch_size": 2.5})"),
            "ds_config.json: train_batch_size: expected an integer > 0, got 2.5");
  EXPECT_EQ(error_of(R"({"train_batch_size": 8, "zero_optimization": {"stage": 5}})"),
            "ds_config.json: zero_optimization.stage: expected an integer in [0, 3], got 5");
  EXPECT_EQ(error_of(R"({"train_batch_size": 8, "communication_data_type": "fp8"})"),
            "ds_config.json: communication_data_type: expected one of \"fp16\", \"bf16\", \"fp32\", got \"fp8\" "
            "(did you mean \"fp16\"?)");
  // 5e8 is a float in JSON but an integral one: accepted for integer keys.
  EXPECT_EQ(parse(R"({"train_batch_size": 8, "zero_optimization": {"reduce_bucket_size": 5e7}})").zero.reduce_bucket_size,
            50000000);
}

TEST(ConfigTest, OptimizerSemantics) {
  auto c = parse(R"({"train_batch_size": 8, "optimizer": {"type": "Adam", "params": {"lr": 0.01, "weight_decay": 0.1}}})");
  EXPECT_EQ(c.optimizer.type, "adam");
  EXPECT_TRUE(c.optimizer.adam_w_mode);  // DeepSpeed's Adam decouples weight decay unless told otherwise
  EXPECT_DOUBLE_EQ(c.optimizer.lr, 0.01);
  c = parse(R"({"train_batch_size": 8, "optimizer": {"type": "Adam", "params": {"adam_w_mode": false}}})");
  EXPECT_FALSE(c.optimizer.adam_w_mode);
  c = parse(R"({"train_batch_size": 8, "optimizer": {"type": "AdamW", "params": {"adam_w_mode": false}}})");
  EXPECT_TRUE(c.optimizer.adam_w_mode);  // AdamW is always decoupled
  c = parse(R"({"train_batch_size": 8, "optimizer": {"type": "SGD", "params": {"lr": 0.1, "momentum": 0.9}}})");
  EXPECT_EQ(c.optimizer.type, "sgd");
  EXPECT_NE(error_of(R"({"train_batch_size": 8, "optimizer": {"type": "Adam", "params": {"max_grad_norm": 1.0}}})")
                .find("'max_grad_norm' is not supported as an optimizer parameter, please switch to using the deepspeed "
                      "parameter 'gradient_clipping'"), std::string::npos);
  EXPECT_NE(error_of(R"({"train_batch_size": 8, "optimizer": {"type": "Adamm"}})").find("did you mean \"Adam\"?"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"train_batch_size": 8, "optimizer": {"type": "SGD", "params": {"momentum": 0.9}}})")
                .find("optimizer.params.lr: SGD needs a learning rate"), std::string::npos);
  EXPECT_NE(error_of(R"({"train_batch_size": 8, "optimizer": {"type": "SGD", "params": {"lr": 1, "betas": [0.9, 0.9]}}})")
                .find("optimizer.params.betas: unknown key"), std::string::npos);
}

TEST(ConfigTest, AdagradAndLionTakeDeepSpeedsDefaultsAndKeys) {
  auto c = parse(R"({"train_batch_size": 8, "optimizer": {"type": "Adagrad"}})");
  EXPECT_EQ(c.optimizer.type, "adagrad");
  EXPECT_DOUBLE_EQ(c.optimizer.lr, 1e-2);  // torch.optim.Adagrad's and DeepSpeedCPUAdagrad's, not Adam's
  EXPECT_DOUBLE_EQ(c.optimizer.eps, 1e-10);
  c = parse(R"({"train_batch_size": 8, "optimizer": {"type": "adagrad", "params": {"lr": 0.5, "eps": 1e-6,
                                                                                    "lr_decay": 0}}})");
  EXPECT_DOUBLE_EQ(c.optimizer.lr, 0.5);
  EXPECT_DOUBLE_EQ(c.optimizer.eps, 1e-6);
  EXPECT_EQ(error_of(R"({"train_batch_size": 8, "optimizer": {"type": "Adagrad", "params": {"lr_decay": 0.1}}})"),
            "ds_config.json: optimizer.params.lr_decay: expected 0 (DeepSpeedCPUAdagrad's only value), got 0.1");
  EXPECT_NE(error_of(R"({"train_batch_size": 8, "optimizer": {"type": "Adagrad", "params": {"betas": [0.9, 0.9]}}})")
                .find("optimizer.params.betas: unknown key"), std::string::npos);
  c = parse(R"({"train_batch_size": 8, "optimizer": {"type": "Lion", "params": {"lr": 1e-4, "betas": [0.95, 0.98],
                                                                                 "weight_decay": 0.1}}})");
  EXPECT_EQ(c.optimizer.type, "lion");
  EXPECT_EQ(c.optimizer.betas, (std::vector<double>{0.95, 0.98}));
  EXPECT_DOUBLE_EQ(c.optimizer.weight_decay, 0.1);
  EXPECT_NE(error_of(R"({"train_batch_size": 8, "optimizer": {"type": "Lion", "params": {"betas": [0.9, 1.0]}}})")
                .find("optimizer.params.betas: each beta must be in [0, 1)"), std::string::npos);
  EXPECT_NE(error_of(R"({"train_batch_size": 8, "optimizer": {"type": "Lion", "params": {"eps": 1e-8}}})")
                .find("optimizer.params.eps: unknown key"), std::string::npos);
  EXPECT_NE(error_of(R"({"train_batch_size": 8, "optimizer": {"type": "Lino"}})").find("did you mean \"Lion\"?"),
            std::string::npos);
}

TEST(ConfigTest, PrecisionAndZeroRules) {
  EXPECT_NE(error_of(R"({"train_batch_size": 8, "fp16": {"enabled": true}, "bf16": {"enabled": true}})")
                .find("bfloat16 and fp16 modes cannot be simultaneously enabled"), std::string::npos);
  const auto c = parse(R"({"train_batch_size": 8, "bfloat16": {"enabled": false}, "zero_optimization": {"stage": 0}})");
  EXPECT_FALSE(c.bf16.enabled);
  EXPECT_EQ(parse(R"({"train_batch_size": 8, "zero_optimization": false})").zero.stage, 0);
}

TEST(ConfigTest, ZeroStagesAndOffloadRules) {
  for (int stage : {0, 1, 2, 3}) {
    EXPECT_EQ(parse(R"({"train_batch_size": 8, "zero_optimization": {"stage": )" + std::to_string(stage) + "}}").zero.stage,
              stage);
  }
  const auto offload = parse(R"({"train_batch_size": 8, "zero_optimization": {"stage": 2, "offload_optimizer":
                                 {"device": "cpu", "pin_memory": true, "ratio": 0.25, "convert_grad_on_cpu": false}}})");
  EXPECT_EQ(offload.zero.offload_optimizer.device, "cpu");
  EXPECT_TRUE(offload.zero.offload_optimizer.pin_memory);
  EXPECT_DOUBLE_EQ(offload.zero.offload_optimizer.ratio, 0.25);
  EXPECT_FALSE(offload.zero.offload_optimizer.super_offload);
  EXPECT_TRUE(parse(R"({"train_batch_size": 8, "zero_optimization": {"stage": 1, "offload_optimizer":
                       {"device": "cpu", "super_offload": true}}})")
                  .zero.offload_optimizer.super_offload);
  EXPECT_DOUBLE_EQ(offload.zero.offload_optimizer.cpuadam_cores_perc, 0.8);
  EXPECT_DOUBLE_EQ(parse(R"({"train_batch_size": 8, "zero_optimization": {"stage": 2, "offload_optimizer":
                            {"device": "cpu", "super_offload": true, "cpuadam_cores_perc": 0.5}}})")
                       .zero.offload_optimizer.cpuadam_cores_perc,
                   0.5);
  // One line naming the key and what was expected.
  const std::vector<std::pair<std::string, std::string>> bad = {
      {R"({"stage": 0, "offload_optimizer": {"device": "cpu"}})", "offload_optimizer: needs ZeRO stage 1, 2 or 3"},
      {R"({"stage": 2, "offload_param": {"device": "cpu"}})", "offload_param: needs ZeRO stage 3 (stage is 2)"},
      {R"({"stage": 2, "offload_optimizer": {"device": "nvme", "nvme_path": "/nvme"}})",
       "offload_optimizer.device: \"nvme\" (ZeRO-Infinity) is not implemented yet by deepspeed.cpp; use \"cpu\""},
      {R"({"stage": 2, "offload_optimizer": {"device": "cpu", "ratio": 1.5}})", "offload_optimizer.ratio"},
      {R"({"stage": 2, "offload_optimizer": {"device": "gpu"}})", "offload_optimizer.device"},
      {R"({"stage": 2, "offload_optimizer": {"super_offload": true}})",
       "offload_optimizer.super_offload: needs device \"cpu\""},
      {R"({"stage": 2, "offload_optimizer": {"device": "cpu", "cpuadam_cores_perc": 0}})",
       "offload_optimizer.cpuadam_cores_perc"}};
  for (const auto& [zero, expected] : bad) {
    const auto e = error_of(R"({"train_batch_size": 8, "zero_optimization": )" + zero + "}");
    EXPECT_NE(e.find(expected), std::string::npos) << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  }
  // Both spellings of the stage-3 keys, not both at once.
  EXPECT_EQ(parse(R"({"train_batch_size": 8, "zero_optimization": {"stage": 3, "max_live_parameters": 7}})")
                .zero.stage3_max_live_parameters, 7);
  EXPECT_NE(error_of(R"({"train_batch_size": 8, "zero_optimization": {"max_live_parameters": 7, "stage3_max_live_parameters": 7}})")
                .find("given twice"), std::string::npos);
}

TEST(ConfigTest, DumpHasDeepSpeedLayout) {
  const auto c = parse(R"({"train_batch_size": 8, "steps_per_print": 5, "optimizer": {"type": "Adam", "params": {"lr": 0.001}}})");
  const auto lines = deepspeed::config::dump_lines(c);
  ASSERT_GT(lines.size(), 3u);
  EXPECT_EQ(lines[0], "DeepSpeedEngine configuration:");
  bool found = false;
  for (const auto& l : lines) {
    if (l == "  train_batch_size ............. 8") found = true;
  }
  EXPECT_TRUE(found);
  EXPECT_EQ(lines.back().rfind("  json = {\n    \"optimizer\":{", 0), 0u) << lines.back();
}
