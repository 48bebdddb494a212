#include "src/engine/checkpoint_parts.h"

#include <map>
#include <set>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "deepspeed/checkpoint/files.h"
#include "deepspeed/util/error.h"
#include "deepspeed/util/strings.h"
#include "src/engine/engine_impl.h"

namespace deepspeed {

using util::cat;

std::vector<std::pair<std::string, at::Tensor>> gather_module_state(torch::nn::Module& module, zero::Strategy& zero,
                                                                    const comm::Communicator& comm) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  const auto named = module.named_parameters();
  std::map<std::string, at::Tensor> copies;
  for (std::size_t u = 0; u < zero.num_units(); ++u) {
    zero.gather(u);
    if (comm.rank() == 0) {
      for (const auto& item : named) {
        if (zero.unit_of(item.value()) == u) copies[item.key()] = item.value().detach().cpu().clone();
      }
    }
    zero.release(u);
  }
  if (comm.rank() != 0) return out;
  for (const auto& item : named) out.emplace_back(item.key(), copies.at(item.key()));
  for (const auto& item : module.named_buffers()) out.emplace_back(item.key(), item.value().detach().cpu().clone());
  return out;
}

namespace {

class ModuleWeights final : public checkpoint::Stateful {
 public:
  ModuleWeights(std::shared_ptr<torch::nn::Module> module, zero::Strategy& zero, const comm::Communicator& comm)
      : module_(std::move(module)), zero_(zero), comm_(comm) {}

  void save(checkpoint::SaveTarget& target) override {
    auto weights = checkpoint::new_dict();
    for (auto& [name, tensor] : gather_module_state(*module_, zero_, comm_)) weights.insert(name, tensor);
    c10::impl::GenericList buffer_names(c10::StringType::get());
    for (const auto& item : module_->named_buffers()) buffer_names.push_back(item.key());
    target.model_states.insert("module", weights);
    target.model_states.insert("buffer_names", buffer_names);
  }

  void load(checkpoint::LoadSource& source, const checkpoint::LoadOptions& options) override {
    at::NoGradGuard no_grad;
    const auto saved = source.model_entry("module").toGenericDict();
    const std::string& file = source.model_file();
    std::set<std::string> seen;
    // Copy into the existing tensors so the flat-buffer views stay intact.
    auto restore = [&](const std::string& key, at::Tensor target) {
      const auto it = saved.find(key);
      if (it == saved.end()) {
        if (options.module_strict) throw UsageError(cat("load_checkpoint: '", file, "' has no weights for \"", key, "\""));
        return;
      }
      const at::Tensor value = it->value().toTensor();
      if (value.sizes() != target.sizes()) {
        throw UsageError(cat("load_checkpoint: \"", key, "\" has shape ", value.sizes(), " in the checkpoint, ",
                             target.sizes(), " in the model"));
      }
      target.detach().copy_(value);
      seen.insert(key);
    };
    const auto named = module_->named_parameters();
    for (std::size_t u = 0; u < zero_.num_units(); ++u) {
      zero_.gather(u);
      for (const auto& item : named) {
        if (zero_.unit_of(item.value()) == u) restore(item.key(), item.value());
      }
      zero_.adopt_parameter_values(u);
      zero_.release(u);
    }
    for (const auto& item : module_->named_buffers()) restore(item.key(), item.value());
    if (!options.module_strict) return;
    for (const auto& item : saved) {
      if (!seen.count(item.key().toStringRef())) {
        throw UsageError(cat("load_checkpoint: '", file, "' has \"", item.key().toStringRef(),
                             "\", which the model does not (load_module_strict=false ignores it)"));
      }
    }
  }

 private:
  std::shared_ptr<torch::nn::Module> module_;
  zero::Strategy& zero_;
  const comm::Communicator& comm_;
};

class OptimizerState final : public checkpoint::Stateful {
 public:
  OptimizerState(optim::Optimizer& optimizer, zero::Strategy& zero) : optimizer_(optimizer), zero_(zero) {}
  void save(checkpoint::SaveTarget& target) override {
    zero_.save_optimizer_state(target, [this] { return optimizer_.state_dict(); });
  }
  void load(checkpoint::LoadSource& source, const checkpoint::LoadOptions& options) override {
    if (options.restores_optimizer()) optimizer_.load_state_dict(zero_.load_optimizer_state(source));
  }

 private:
  optim::Optimizer& optimizer_;
  zero::Strategy& zero_;
};

class JsonState final : public checkpoint::Stateful {
 public:
  explicit JsonState(JsonPart part) : part_(std::move(part)) {}
  void save(checkpoint::SaveTarget& target) override {
    const auto state = part_.save();
    target.model_states.insert(part_.key, state ? checkpoint::json_to_ivalue(*state) : c10::IValue());
  }
  void load(checkpoint::LoadSource& source, const checkpoint::LoadOptions& options) override {
    if (!part_.restore(options)) return;
    const auto saved = source.model_entry(part_.key);
    if (!saved.isNone()) part_.load(checkpoint::ivalue_to_json(saved));
  }

 private:
  JsonPart part_;
};

class Counters final : public checkpoint::Stateful {
 public:
  Counters(StepCounters& counters, std::int64_t gas, int world_size)
      : counters_(counters), gas_(gas), world_size_(world_size) {}
  void save(checkpoint::SaveTarget& target) override {
    auto& s = target.model_states;
    s.insert("global_steps", counters_.global_steps);
    s.insert("global_samples", counters_.global_samples);
    s.insert("skipped_steps", counters_.skipped_steps);
    s.insert("micro_steps", counters_.micro_steps);
    s.insert("dp_world_size", static_cast<std::int64_t>(world_size_));
    s.insert("mp_world_size", static_cast<std::int64_t>(1));
  }
  void load(checkpoint::LoadSource& source, const checkpoint::LoadOptions& options) override {
    if (options.module_only) return;
    counters_.global_steps = source.model_entry("global_steps").toInt();
    counters_.global_samples = source.model_entry("global_samples").toInt();
    counters_.skipped_steps = source.model_entry("skipped_steps").toInt();
    counters_.micro_steps = counters_.global_steps * gas_;
  }

 private:
  StepCounters& counters_;
  std::int64_t gas_;
  int world_size_;
};

}  // namespace

std::unique_ptr<checkpoint::Stateful> module_weights_part(std::shared_ptr<torch::nn::Module> module,
                                                          zero::Strategy& zero, const comm::Communicator& comm) {
  return std::make_unique<ModuleWeights>(std::move(module), zero, comm);
}

std::unique_ptr<checkpoint::Stateful> optimizer_part(optim::Optimizer& optimizer, zero::Strategy& zero) {
  return std::make_unique<OptimizerState>(optimizer, zero);
}

std::unique_ptr<checkpoint::Stateful> json_part(JsonPart part) { return std::make_unique<JsonState>(std::move(part)); }

std::unique_ptr<checkpoint::Stateful> counters_part(StepCounters& counters, std::int64_t gradient_accumulation_steps,
                                                    int world_size) {
  return std::make_unique<Counters>(counters, gradient_accumulation_steps, world_size);
}

bool is_engine_key(const std::string& key) {
  static const std::set<std::string> keys = {"module", "buffer_names", "param_shapes", "lr_scheduler", "global_steps",
                                             "global_samples", "skipped_steps", "micro_steps", "dp_world_size",
                                             "mp_world_size", "ds_config", "ds_version", "zero_stage", "loss_scaler",
                                             "optimizer", "layout"};
  return keys.count(key) > 0;
}

}  // namespace deepspeed
