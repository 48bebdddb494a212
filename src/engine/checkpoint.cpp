// Engine::save_checkpoint / load_checkpoint: what goes into DeepSpeed's checkpoint files and back. File
// layout and crash safety live in src/checkpoint/files.cpp; shard re-cutting in src/checkpoint/reshard.cpp.
#include <filesystem>
#include <map>
#include <set>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "deepspeed/checkpoint/consolidate.h"
#include "deepspeed/checkpoint/files.h"
#include "deepspeed/engine/engine.h"
#include "deepspeed/checkpoint/reshard.h"
#include "deepspeed/util/logging.h"
#include "src/engine/engine_impl.h"

namespace deepspeed {

using util::cat;
namespace ckpt = checkpoint;

namespace {

constexpr const char* kVersion = "0.1.0+deepspeed.cpp";
// Keys the engine writes at the top level of the model-states file; everything else is client state.
const std::set<std::string> kEngineKeys = {"module", "buffer_names", "param_shapes", "lr_scheduler", "global_steps",
                                          "global_samples", "skipped_steps", "micro_steps", "dp_world_size",
                                          "mp_world_size", "ds_config", "ds_version", "zero_stage", "loss_scaler",
                                          "optimizer", "layout"};

c10::impl::GenericDict new_dict() { return c10::impl::GenericDict(c10::StringType::get(), c10::AnyType::get()); }

c10::impl::GenericList tensor_list(const std::vector<at::Tensor>& tensors) {
  c10::impl::GenericList list(c10::AnyType::get());
  for (const auto& t : tensors) list.push_back(t.detach().cpu().clone());
  return list;
}

// DeepSpeed's param_shapes: per flat group (the layout the fp32 masters and optimizer shards follow), the names
// and shapes of its parameters in order. What consolidation needs to turn flat fp32 groups back into tensors.
c10::impl::GenericList param_shapes(const EngineImpl& e) {
  std::map<const c10::TensorImpl*, std::string> name_of;
  for (const auto& item : e.module->named_parameters()) name_of[item.value().unsafeGetTensorImpl()] = item.key();
  c10::impl::GenericList groups(c10::AnyType::get());
  for (const auto* g : e.layout_groups()) {
    c10::impl::GenericDict shapes(c10::StringType::get(), c10::AnyType::get());
    for (std::size_t i = 0; i < g->params.size(); ++i) {
      shapes.insert(name_of.at(g->params[i].unsafeGetTensorImpl()), c10::List<std::int64_t>(g->shapes[i]));
    }
    groups.push_back(shapes);
  }
  return groups;
}

// The module's parameters and buffers on rank 0's CPU (empty elsewhere). Collective under ZeRO-3, whose weights
// are whole only inside their unit: units are gathered one at a time, so no rank holds more than one unit extra.
std::vector<std::pair<std::string, at::Tensor>> gather_module_state(EngineImpl& e) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  const auto named = e.module->named_parameters();
  std::map<std::string, at::Tensor> copies;
  const std::size_t units = e.partitioned ? e.partitioned->num_units() : 1;
  for (std::size_t u = 0; u < units; ++u) {
    if (e.partitioned) e.partitioned->gather(u);
    if (e.comm->rank() == 0) {
      for (const auto& item : named) {
        const bool in_unit = !e.partitioned || e.partitioned->unit_of(item.value()).value_or(0) == u;
        if (in_unit) copies[item.key()] = item.value().detach().cpu().clone();
      }
    }
    if (e.partitioned && u != 0) e.partitioned->release(u);
  }
  if (e.comm->rank() != 0) return out;
  for (const auto& item : named) out.emplace_back(item.key(), copies.at(item.key()));
  for (const auto& item : e.module->named_buffers()) out.emplace_back(item.key(), item.value().detach().cpu().clone());
  return out;
}

}  // namespace

bool Engine::save_16bit_model(const std::string& save_dir, const std::string& save_filename) {
  EngineImpl& e = *impl_;
  if (e.partitioned && !e.config.zero.stage3_gather_16bit_weights_on_model_save) {
    DS_LOG_DIST(kWarning, "Did not save the model ", (std::filesystem::path(save_dir) / save_filename).string(),
                " because stage3_gather_16bit_weights_on_model_save is False");
    return false;
  }
  const auto state = gather_module_state(e);
  if (e.comm->rank() == 0) {
    std::error_code ec;
    std::filesystem::create_directories(save_dir, ec);
    if (ec) throw UsageError(cat("save_16bit_model: cannot create '", save_dir, "': ", ec.message()));
    ckpt::save_state_dict(state, (std::filesystem::path(save_dir) / save_filename).string());
  }
  e.comm->barrier();
  return true;
}

void Engine::save_checkpoint(const std::string& save_dir, std::optional<std::string> tag,
                             const ClientState& client_state, bool save_latest) {
  EngineImpl& e = *impl_;
  auto& comm = *e.comm;
  const std::string name = tag.value_or(cat("global_step", e.global_steps));
  // Every rank must write under the same tag (DeepSpeed's tag validation, always on here).
  const double hash = static_cast<double>(std::hash<std::string>{}(name) & ((1ULL << 52) - 1));
  if (comm.all_reduce_scalar(hash, comm::ReduceOp::kMax) != comm.all_reduce_scalar(hash, comm::ReduceOp::kMin)) {
    throw UsageError(cat("save_checkpoint: ranks passed different tags (rank ", comm.rank(), " has '", name, "')"));
  }
  if (comm.rank() == 0) ckpt::begin_save(save_dir, name);
  comm.barrier();
  const std::string stage_dir = ckpt::staging_dir(save_dir, name);
  const int stage = e.config.zero.stage;

  auto module_state = new_dict();
  for (auto& [name, tensor] : gather_module_state(e)) module_state.insert(name, tensor);
  if (comm.rank() == 0) {
    auto state = new_dict();
    c10::impl::GenericList buffer_names(c10::StringType::get());
    for (const auto& item : e.module->named_buffers()) buffer_names.push_back(item.key());
    state.insert("module", module_state);
    state.insert("buffer_names", buffer_names);
    state.insert("param_shapes", param_shapes(e));
    auto layout = new_dict();
    layout.insert("bucket_numel", e.bucket_numel);
    layout.insert("alignment", e.alignment);
    layout.insert("world_size", static_cast<std::int64_t>(stage == 0 ? 1 : comm.world_size()));
    state.insert("layout", layout);
    state.insert("lr_scheduler", e.scheduler ? ckpt::json_to_ivalue(e.scheduler->state_dict()) : c10::IValue());
    state.insert("global_steps", e.global_steps);
    state.insert("global_samples", e.global_samples);
    state.insert("skipped_steps", e.skipped_steps);
    state.insert("micro_steps", e.micro_steps);
    state.insert("dp_world_size", static_cast<std::int64_t>(comm.world_size()));
    state.insert("mp_world_size", static_cast<std::int64_t>(1));
    state.insert("ds_config", e.config.json.dump());
    state.insert("ds_version", std::string(kVersion));
    state.insert("zero_stage", static_cast<std::int64_t>(stage));
    state.insert("loss_scaler", ckpt::json_to_ivalue(e.loss_scaler.state_dict()));
    if (stage == 0) {
      auto optimizer = new_dict();
      optimizer.insert("optimizer_state_dict", e.optimizer->state_dict());
      optimizer.insert("fp32_flat_groups", tensor_list(e.master ? e.master->masters() : std::vector<at::Tensor>{}));
      state.insert("optimizer", optimizer);
    }
    for (const auto& [key, value] : client_state) {
      if (kEngineKeys.count(key)) throw UsageError(cat("save_checkpoint: client_state key \"", key, "\" is reserved"));
      state.insert(key, value);
    }
    ckpt::save_ivalue(state, (std::filesystem::path(stage_dir) / ckpt::model_states_name()).string());
  }
  if (stage > 0) {
    auto inner = new_dict();
    inner.insert("zero_stage", static_cast<std::int64_t>(stage));
    inner.insert("partition_count", static_cast<std::int64_t>(comm.world_size()));
    inner.insert("base_optimizer_state", e.optimizer->state_dict());
    inner.insert("fp32_flat_groups", tensor_list(e.master->masters()));
    auto layout = new_dict();
    layout.insert("bucket_numel", e.bucket_numel);
    layout.insert("alignment", e.alignment);
    c10::impl::GenericList numels(c10::AnyType::get());
    for (const auto* g : e.layout_groups()) numels.push_back(c10::List<std::int64_t>(g->numels()));
    layout.insert("group_numels", numels);
    inner.insert("layout", layout);
    auto file = new_dict();
    file.insert("optimizer_state_dict", inner);
    file.insert("ds_config", e.config.json.dump());
    file.insert("ds_version", std::string(kVersion));
    ckpt::save_ivalue(file, (std::filesystem::path(stage_dir) / ckpt::optim_states_name(comm.rank(), e.config.bf16.enabled)).string());
  }
  ckpt::fault_point("after_write", comm.rank());
  comm.barrier();  // every rank's files are on disk
  if (comm.rank() == 0) ckpt::commit_save(save_dir, name, save_latest);
  comm.barrier();
  DS_LOG_DIST(kInfo, "Saving model checkpoint: ", (std::filesystem::path(save_dir) / name).string());
}

LoadedCheckpoint Engine::load_checkpoint(const std::string& load_dir, std::optional<std::string> tag,
                                         bool load_module_strict, bool load_optimizer_states,
                                         bool load_lr_scheduler_states, bool load_module_only) {
  EngineImpl& e = *impl_;
  auto& comm = *e.comm;
  if (!tag) tag = ckpt::read_latest(load_dir);
  if (!tag) {
    DS_LOG_DIST(kWarning, "Unable to find latest file at ", (std::filesystem::path(load_dir) / "latest").string(),
                ", if trying to load latest checkpoint please ensure this file exists or pass an explicit "
                "checkpoint tag when loading a checkpoint.");
    return {};
  }
  const std::string dir = ckpt::resolve_tag_dir(load_dir, *tag);
  const std::string model_file = (std::filesystem::path(dir) / ckpt::model_states_name()).string();
  const auto state = ckpt::load_ivalue(model_file).toGenericDict();

  // Weights: copy into the existing tensors so the flat-buffer views stay intact.
  {
    at::NoGradGuard no_grad;
    const auto saved = ckpt::entry(state, "module", model_file).toGenericDict();
    std::set<std::string> seen;
    auto restore = [&](const std::string& key, at::Tensor target) {
      const auto it = saved.find(key);
      if (it == saved.end()) {
        if (load_module_strict) throw UsageError(cat("load_checkpoint: '", model_file, "' has no weights for \"", key, "\""));
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
    const std::size_t units = e.partitioned ? e.partitioned->num_units() : 1;
    for (std::size_t u = 0; u < units; ++u) {
      if (e.partitioned) e.partitioned->gather(u);
      for (const auto& item : e.module->named_parameters()) {
        if (!e.partitioned || e.partitioned->unit_of(item.value()).value_or(0) == u) restore(item.key(), item.value());
      }
      if (e.partitioned) {
        e.partitioned->update_shards_from_full(u);
        if (u != 0) e.partitioned->release(u);
      }
    }
    for (const auto& item : e.module->named_buffers()) restore(item.key(), item.value());
    if (load_module_strict) {
      for (const auto& item : saved) {
        if (!seen.count(item.key().toStringRef())) {
          throw UsageError(cat("load_checkpoint: '", model_file, "' has \"", item.key().toStringRef(),
                               "\", which the model does not (load_module_strict=false ignores it)"));
        }
      }
    }
  }

  const int saved_stage = static_cast<int>(ckpt::entry(state, "zero_stage", model_file).toInt());
  const int stage = e.config.zero.stage;
  if (load_module_only || !load_optimizer_states) {
    if (e.master) e.master->refresh_from_model();
  } else if ((saved_stage == 0) != (stage == 0) || (saved_stage == 3) != (stage == 3)) {
    throw UsageError(cat("load_checkpoint: '", dir, "' was saved with ZeRO stage ", saved_stage,
                         " and this engine runs stage ", stage, "; optimizer state moves between stages 1 and 2 only, "
                         "not to or from stage 0 or 3 (load_module_only=true loads the weights alone)"));
  } else if (stage == 0) {
    const auto optimizer = ckpt::entry(state, "optimizer", model_file).toGenericDict();
    e.optimizer->load_state_dict(ckpt::entry(optimizer, "optimizer_state_dict", model_file));
    const auto masters = ckpt::entry(optimizer, "fp32_flat_groups", model_file).toList();
    if (e.master && e.master->has_copies()) {
      at::NoGradGuard no_grad;
      if (masters.size() != e.master->masters().size()) {
        throw UsageError(cat("load_checkpoint: '", model_file, "' holds no fp32 master weights for this precision "
                                                            "(saved in fp32?); load_optimizer_states=false starts from the weights"));
      }
      for (std::size_t g = 0; g < masters.size(); ++g) e.master->masters()[g].copy_(masters.get(g).toTensor());
    }
    e.loss_scaler.load_state_dict(ckpt::ivalue_to_json(ckpt::entry(state, "loss_scaler", model_file)));
  } else {
    load_zero_shards(e, dir);
    e.loss_scaler.load_state_dict(ckpt::ivalue_to_json(ckpt::entry(state, "loss_scaler", model_file)));
  }
  if (e.master && stage > 0) e.master->write_back();  // weights = the restored masters on every rank

  if (!load_module_only) {
    if (load_lr_scheduler_states && e.scheduler) {
      const auto sched = ckpt::entry(state, "lr_scheduler", model_file);
      if (!sched.isNone()) e.scheduler->load_state_dict(ckpt::ivalue_to_json(sched));
    }
    e.global_steps = ckpt::entry(state, "global_steps", model_file).toInt();
    e.global_samples = ckpt::entry(state, "global_samples", model_file).toInt();
    e.skipped_steps = ckpt::entry(state, "skipped_steps", model_file).toInt();
    e.micro_steps = e.global_steps * e.config.batch.gradient_accumulation_steps;
  }
  e.reducer->zero_grad();
  LoadedCheckpoint result{dir, {}};
  for (const auto& item : state) {
    if (!kEngineKeys.count(item.key().toStringRef())) result.client_state[item.key().toStringRef()] = item.value();
  }
  comm.barrier();
  return result;
}

}  // namespace deepspeed
