#pragma once
/// \file
/// DeepSpeed's checkpoint layout and crash-safe writing.
///
///   save_dir/latest                                         text: the newest complete tag
///   save_dir/<tag>/mp_rank_00_model_states.pt               module weights, counters, scheduler, client_state
///                                                           (and the optimizer for ZeRO stage 0)
///   save_dir/<tag>/[bf16_]zero_pp_rank_<r>_mp_rank_00_optim_states.pt   ZeRO stages 1–2: rank r's shard
///
/// Files are LibTorch pickles (torch::pickle_save), which PyTorch's torch.load reads. A save goes to
/// save_dir/.<tag>.partial/ and is renamed to <tag> only once every rank has written and synced its files;
/// `latest` is replaced last (write + rename). A crash at any point leaves the previous checkpoint loadable.

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/ivalue.h>
#include <nlohmann/json.hpp>

namespace deepspeed::checkpoint {

std::string model_states_name();
std::string optim_states_name(int dp_rank, bool bf16);
/// The existing optimizer-shard file of `dp_rank` in a tag directory (with or without the bf16_ prefix).
/// Throws UsageError naming the directory when there is none (an incomplete save).
std::string find_optim_states(const std::string& tag_dir, int dp_rank);

/// dict[key], or a UsageError naming the file and the missing entry.
c10::IValue entry(const c10::impl::GenericDict& dict, const std::string& key, const std::string& file);

/// Writes `bytes` to `path` via a temporary file, fsync and rename.
void write_file_atomic(const std::string& path, const std::string& bytes);
std::string read_file(const std::string& path);

/// torch::pickle_save / pickle_load to and from a file. Errors name the file.
void save_ivalue(const c10::IValue& value, const std::string& path);
c10::IValue load_ivalue(const std::string& path);

/// Writes a state dict (name → tensor) as a pickle both torch.load(weights_only=True) (PyTorch) and
/// torch::pickle_load (LibTorch) read: no TorchScript type tags.
void save_state_dict(const std::vector<std::pair<std::string, at::Tensor>>& state, const std::string& path);

/// Small JSON documents (scheduler, loss scaler) as pickled dicts, and back.
c10::IValue json_to_ivalue(const nlohmann::json& j);
nlohmann::json ivalue_to_json(const c10::IValue& v);

/// The staging directory of a save in progress.
std::string staging_dir(const std::string& save_dir, const std::string& tag);
/// Rank 0, before any rank writes: creates the staging directory, removing a stale one.
void begin_save(const std::string& save_dir, const std::string& tag);
/// Rank 0, after every rank has written: publishes the staging directory as <tag> (replacing an older one)
/// and, if `save_latest`, points `latest` at it.
void commit_save(const std::string& save_dir, const std::string& tag, bool save_latest);

/// The tag `latest` names, or nullopt if there is none.
std::optional<std::string> read_latest(const std::string& load_dir);
/// The directory holding `tag`, recovering an interrupted commit (<tag> missing but .<tag>.old present).
/// Throws UsageError naming the path when neither exists.
std::string resolve_tag_dir(const std::string& load_dir, const std::string& tag);

/// Test hook for crash safety: when env DS_CHECKPOINT_FAULT is "<where>:<rank>" and matches, the process
/// dies on the spot (as a killed rank would). No effect otherwise.
void fault_point(const char* where, int rank);

}  // namespace deepspeed::checkpoint
