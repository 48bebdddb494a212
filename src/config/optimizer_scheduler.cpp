// Parsing of the `optimizer` and `scheduler` sections. Which params are legal depends on the type, so each
// type reads its own keys and anything else is an unknown-key error naming the closest legal key.
#include "src/config/sections.h"

#include <algorithm>
#include <cctype>

#include "deepspeed/util/strings.h"

namespace deepspeed::config {

using util::cat;

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// Scalar or per-group list (DeepSpeed's _format_param). A scalar is stored as a one-element list, which the
// schedule broadcasts to every group. `non_negative` applies to each element.
void read_number_or_list(Section& params, const char* key, std::vector<double>& field, bool non_negative = false) {
  const Json* v = params.raw(key);
  if (!v) return;
  if (!v->is_array()) {
    double value = 0;
    params.read(key, value, non_negative ? Range{.min = 0.0} : Range{});
    field = {value};
    return;
  }
  params.read(key, field);
  if (field.empty()) params.fail(key, "expected a number or a non-empty list of numbers, got []");
  if (non_negative && std::any_of(field.begin(), field.end(), [](double x) { return x < 0; })) {
    params.fail(key, cat("expected numbers >= 0, got ", util::py_float_list(field)));
  }
}

// "a, b, c", each name between `quote`s.
std::string listed(const std::vector<std::string>& names, const std::string& quote) {
  std::string out;
  for (const auto& n : names) out += cat(out.empty() ? "" : ", ", quote, n, quote);
  return out;
}

void read_betas(Section& params, std::vector<double>& betas) {
  params.read("betas", betas, 2);
  for (double b : betas) {
    if (b < 0 || b >= 1) params.fail("betas", cat("each beta must be in [0, 1), got ", util::py_float_list(betas)));
  }
}

}  // namespace

void parse_optimizer(Section& root, OptimizerConfig& out) {
  Section section = root.child("optimizer");
  if (!section.present()) return;
  static const std::vector<std::string> kNames = {"Adam", "AdamW", "SGD", "Lamb", "Adagrad", "Lion"};
  static const std::string kAvailable = listed(kNames, "");
  std::string type;
  if (!section.read("type", type)) section.fail("type", cat("missing; expected one of ", listed(kNames, "\"")));
  const std::string name = lower(type);
  static const std::vector<std::string> kLater = {"onebitadam", "zerooneadam", "onebitlamb", "muadam",
                                                  "muadamw", "musgd", "muon", "rmsprop"};
  if (std::find(kLater.begin(), kLater.end(), name) != kLater.end()) {
    section.fail("type", cat("\"", type, "\" is a DeepSpeed optimizer that deepspeed.cpp does not implement yet "
                                         "(available: ", kAvailable, ")"));
  }
  if (std::none_of(kNames.begin(), kNames.end(), [&](const std::string& n) { return lower(n) == name; })) {
    const std::string hint = util::closest_match(type, kNames);
    section.fail("type", cat("\"", type, "\" is not a supported DeepSpeed Optimizer (available: ", kAvailable, ")",
                             hint.empty() ? "" : cat("; did you mean \"", hint, "\"?")));
  }
  out.type = name;

  Section params = section.child("params");
  if (params.has("max_grad_norm")) {
    params.fail("max_grad_norm",
                "'max_grad_norm' is not supported as an optimizer parameter, please switch to using the deepspeed "
                "parameter 'gradient_clipping'");
  }
  const Range non_negative{.min = 0.0};
  const bool has_lr = params.read("lr", out.lr, non_negative);
  params.read("weight_decay", out.weight_decay, non_negative);
  if (name == "sgd") {
    if (!has_lr) params.fail("lr", "SGD needs a learning rate (optimizer.params.lr)");
    params.read("momentum", out.momentum, non_negative);
    params.read("dampening", out.dampening);
    params.read("nesterov", out.nesterov);
    if (out.nesterov && (out.momentum <= 0 || out.dampening != 0)) {
      params.fail("nesterov", "Nesterov momentum requires a momentum and zero dampening");
    }
  } else if (name == "adagrad") {
    // torch.optim.Adagrad's and DeepSpeedCPUAdagrad's defaults, not Adam's.
    if (!has_lr) out.lr = 1e-2;
    out.eps = 1e-10;
    params.read("eps", out.eps, non_negative);
    // torch.optim.Adagrad's two extras; DeepSpeedCPUAdagrad has neither, so neither do we.
    for (const char* key : {"lr_decay", "initial_accumulator_value"}) {
      double value = 0;
      params.read(key, value);
      if (value != 0) params.fail(key, cat("expected 0 (DeepSpeedCPUAdagrad's only value), got ", util::py_float(value)));
    }
  } else if (name == "lion") {
    read_betas(params, out.betas);
  } else {
    read_betas(params, out.betas);
    params.read("eps", out.eps, non_negative);
    params.read("bias_correction", out.bias_correction);
    if (name == "lamb") {
      params.read("max_coeff", out.max_coeff, non_negative);
      params.read("min_coeff", out.min_coeff, non_negative);
      params.unsupported("eps_inside_sqrt");
    } else {
      params.read("adam_w_mode", out.adam_w_mode);
      params.read("torch_adam", out.torch_adam);
      params.read("amsgrad", out.amsgrad);
      if (out.amsgrad && !out.torch_adam) {
        params.fail("amsgrad", "FusedAdam does not support the AMSGrad variant; set \"torch_adam\": true to use it");
      }
      params.unsupported("fp32_optimizer_states");
      // "AdamW" always means decoupled weight decay; "Adam" does unless adam_w_mode is false.
      if (name == "adamw") out.adam_w_mode = true;
    }
  }
  params.finish();
  section.finish();
}

void parse_scheduler(Section& root, SchedulerConfig& out) {
  Section section = root.child("scheduler");
  if (!section.present()) return;
  static const std::vector<std::string> kTypes = {"WarmupLR", "WarmupDecayLR", "WarmupCosineLR", "OneCycle",
                                                  "LRRangeTest"};
  // DeepSpeed falls back to torch.optim.lr_scheduler for any other name; say so rather than "unknown".
  static const std::vector<std::string> kTorch = {
      "LambdaLR", "MultiplicativeLR", "StepLR", "MultiStepLR", "ConstantLR", "LinearLR", "ExponentialLR",
      "SequentialLR", "PolynomialLR", "CosineAnnealingLR", "ChainedScheduler", "ReduceLROnPlateau", "CyclicLR",
      "CosineAnnealingWarmRestarts", "OneCycleLR"};
  if (!section.has("type")) section.fail("type", "missing; expected one of WarmupLR, WarmupDecayLR, WarmupCosineLR, OneCycle, LRRangeTest");
  if (const Json* type = section.raw("type");
      type->is_string() && std::find(kTorch.begin(), kTorch.end(), type->get<std::string>()) != kTorch.end()) {
    section.fail("type", cat("\"", type->get<std::string>(), "\" is a torch.optim.lr_scheduler class, which deepspeed.cpp "
                             "does not implement (available: WarmupLR, WarmupDecayLR, WarmupCosineLR, OneCycle, "
                             "LRRangeTest)"));
  }
  section.read_choice("type", out.type, kTypes);
  Section params = section.child("params");
  const Range positive{.min = 0.0, .above = true};
  const Range non_negative{.min = 0.0};
  const std::string& t = out.type;
  if (t == "WarmupLR" || t == "WarmupDecayLR") {
    read_number_or_list(params, "warmup_min_lr", out.warmup_min_lr);
    read_number_or_list(params, "warmup_max_lr", out.warmup_max_lr);
  }
  if (t == "WarmupLR" || t == "WarmupDecayLR" || t == "WarmupCosineLR") {
    // DeepSpeed: "warmup_num_steps must be a positive integer"; 1 is accepted and then treated as 2.
    params.read("warmup_num_steps", out.warmup_num_steps, positive);
    // DeepSpeed only warns and uses "log" for an unknown type; a typo here is an error instead.
    params.read_choice("warmup_type", out.warmup_type, {"log", "linear"});
  }
  if (t == "WarmupDecayLR" || t == "WarmupCosineLR") {
    // A required constructor argument in DeepSpeed (TypeError when missing). The warning for
    // total_num_steps < warmup_num_steps is logged by the schedule, where DeepSpeed logs it.
    if (!params.read("total_num_steps", out.total_num_steps, positive)) {
      params.fail("total_num_steps", cat("required by ", t));
    }
  }
  if (t == "WarmupCosineLR") {
    params.read("warmup_min_ratio", out.warmup_min_ratio, non_negative);
    params.read("cos_min_ratio", out.cos_min_ratio, non_negative);
  }
  if (t == "OneCycle") {
    if (!params.has("cycle_min_lr")) params.fail("cycle_min_lr", "required by OneCycle");
    if (!params.has("cycle_max_lr")) params.fail("cycle_max_lr", "required by OneCycle");
    read_number_or_list(params, "cycle_min_lr", out.cycle_min_lr, /*non_negative=*/true);
    read_number_or_list(params, "cycle_max_lr", out.cycle_max_lr, /*non_negative=*/true);
    params.read("decay_lr_rate", out.decay_lr_rate, non_negative);
    params.read("cycle_first_step_size", out.cycle_first_step_size, positive);
    // 0 is legal in DeepSpeed: the lr then rises over the whole cycle and drops to the decay phase.
    params.read("cycle_second_step_size", out.cycle_second_step_size, non_negative);
    params.read("cycle_first_stair_count", out.cycle_first_stair_count, non_negative);
    params.read("cycle_second_stair_count", out.cycle_second_stair_count, non_negative);
    params.read("decay_step_size", out.decay_step_size, non_negative);
    params.read("cycle_momentum", out.cycle_momentum);
    read_number_or_list(params, "cycle_min_mom", out.cycle_min_mom, /*non_negative=*/true);
    read_number_or_list(params, "cycle_max_mom", out.cycle_max_mom, /*non_negative=*/true);
    params.read("decay_mom_rate", out.decay_mom_rate, non_negative);
  }
  if (t == "LRRangeTest") {
    read_number_or_list(params, "lr_range_test_min_lr", out.lr_range_test_min_lr, /*non_negative=*/true);
    params.read("lr_range_test_step_size", out.lr_range_test_step_size, positive);
    params.read("lr_range_test_step_rate", out.lr_range_test_step_rate, non_negative);
    params.read("lr_range_test_staircase", out.lr_range_test_staircase);
  }
  params.read("last_batch_iteration", out.last_batch_iteration, Range{.min = -1.0});
  params.finish();
  section.finish();
}

}  // namespace deepspeed::config
