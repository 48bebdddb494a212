// Engine::save_checkpoint / load_checkpoint / save_16bit_model: loops over the checkpoint parts
// (EngineImpl::checkpoint_parts()) and writes or reads DeepSpeed's files. What each part stores is in the part;
// file layout and crash safety are in src/checkpoint/files.cpp.
#include <filesystem>

#include "deepspeed/checkpoint/files.h"
#include "deepspeed/checkpoint/state.h"
#include "deepspeed/engine/engine.h"
#include "deepspeed/util/logging.h"
#include "src/engine/checkpoint_parts.h"
#include "src/engine/engine_impl.h"

namespace deepspeed {

using util::cat;
namespace ckpt = checkpoint;

namespace {

constexpr const char* kVersion = "0.1.0+deepspeed.cpp";

// What DeepSpeed writes beside the state in both kinds of file.
void add_provenance(ckpt::Dict& file, const config::Config& config) {
  file.insert("ds_config", config.json.dump());
  file.insert("ds_version", std::string(kVersion));
}

}  // namespace

bool Engine::save_16bit_model(const std::string& save_dir, const std::string& save_filename) {
  EngineImpl& e = *impl_;
  if (!e.zero().allows_16bit_model_save()) {
    DS_LOG_DIST(kWarning, "Did not save the model ", (std::filesystem::path(save_dir) / save_filename).string(),
                " because stage3_gather_16bit_weights_on_model_save is False");
    return false;
  }
  const auto state = gather_module_state(*e.module(), e.zero(), e.comm());
  if (e.comm().rank() == 0) {
    std::error_code ec;
    std::filesystem::create_directories(save_dir, ec);
    if (ec) throw UsageError(cat("save_16bit_model: cannot create '", save_dir, "': ", ec.message()));
    ckpt::save_state_dict(state, (std::filesystem::path(save_dir) / save_filename).string());
  }
  e.comm().barrier();
  return true;
}

void Engine::save_checkpoint(const std::string& save_dir, std::optional<std::string> tag,
                             const ClientState& client_state, bool save_latest) {
  EngineImpl& e = *impl_;
  auto& comm = e.comm();
  const std::string name = tag.value_or(cat("global_step", e.counters().global_steps));
  // Every rank must write under the same tag (DeepSpeed's tag validation, always on here).
  const double hash = static_cast<double>(std::hash<std::string>{}(name) & ((1ULL << 52) - 1));
  if (comm.all_reduce_scalar(hash, comm::ReduceOp::kMax) != comm.all_reduce_scalar(hash, comm::ReduceOp::kMin)) {
    throw UsageError(cat("save_checkpoint: ranks passed different tags (rank ", comm.rank(), " has '", name, "')"));
  }
  for (const auto& [key, value] : client_state) {
    if (is_engine_key(key)) throw UsageError(cat("save_checkpoint: client_state key \"", key, "\" is reserved"));
  }
  if (comm.rank() == 0) ckpt::begin_save(save_dir, name);
  comm.barrier();
  const std::filesystem::path stage_dir = ckpt::staging_dir(save_dir, name);

  ckpt::SaveTarget target;
  target.model_states_written = comm.rank() == 0;
  for (auto* part : e.checkpoint_parts()) part->save(target);
  if (comm.rank() == 0) {
    for (const auto& [key, value] : client_state) target.model_states.insert(key, value);
    add_provenance(target.model_states, e.config());
    ckpt::save_ivalue(target.model_states, (stage_dir / ckpt::model_states_name()).string());
  }
  if (!target.rank_states.empty()) {
    auto file = ckpt::new_dict();
    file.insert("optimizer_state_dict", target.rank_states);
    add_provenance(file, e.config());
    ckpt::save_ivalue(file, (stage_dir / ckpt::optim_states_name(comm.rank(), e.config().bf16.enabled)).string());
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
  if (!tag) tag = ckpt::read_latest(load_dir);
  if (!tag) {
    DS_LOG_DIST(kWarning, "Unable to find latest file at ", (std::filesystem::path(load_dir) / "latest").string(),
                ", if trying to load latest checkpoint please ensure this file exists or pass an explicit "
                "checkpoint tag when loading a checkpoint.");
    return {};
  }
  ckpt::LoadSource source(ckpt::resolve_tag_dir(load_dir, *tag));
  const ckpt::LoadOptions options{load_module_strict, load_optimizer_states, load_lr_scheduler_states, load_module_only};
  for (auto* part : e.checkpoint_parts()) part->load(source, options);
  e.zero().zero_grad();
  LoadedCheckpoint result{source.dir(), {}};
  for (const auto& item : source.model_states()) {
    if (!is_engine_key(item.key().toStringRef())) result.client_state[item.key().toStringRef()] = item.value();
  }
  e.comm().barrier();
  return result;
}

}  // namespace deepspeed
