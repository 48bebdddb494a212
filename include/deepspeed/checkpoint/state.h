#pragma once
/// \file
/// What the stateful parts of a training job write into a checkpoint and read back from one, in DeepSpeed's
/// file layout (files.h): one model-states file, written by rank 0, and one optimizer-states file per
/// data-parallel rank. Each part (the ZeRO layout, the module's weights, the optimizer, the loss scaler, the LR
/// schedule, the step counters) puts its own entries into a SaveTarget and takes them back from a LoadSource;
/// Engine::save_checkpoint / load_checkpoint loop over the parts and write or read the files. No part knows
/// where the files are or how they are made crash-safe.

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/ivalue.h>

namespace deepspeed::checkpoint {

using Dict = c10::impl::GenericDict;

/// An empty str → any dict (the type of every dict in DeepSpeed's checkpoint files).
Dict new_dict();
/// parent[key] as a dict, inserted empty if absent (dicts share their contents: writes land in `parent`).
Dict section(Dict& parent, const std::string& key);

/// The entries one save collects on this rank.
struct SaveTarget {
  /// True on the rank whose model_states are written (rank 0): other ranks may leave costly entries out.
  bool model_states_written = true;
  /// The top level of mp_rank_00_model_states.pt. Only rank 0's is written.
  Dict model_states = new_dict();
  /// The "optimizer_state_dict" entry of this rank's zero_pp_rank_<r>_mp_rank_00_optim_states.pt; the file is
  /// written only when a part put something here (layouts that shard optimizer state do).
  Dict rank_states = new_dict();
};

/// One checkpoint directory (a tag) being loaded. Each file is read at most once, on first use.
class LoadSource {
 public:
  explicit LoadSource(std::string tag_dir);

  const std::string& dir() const { return dir_; }
  const std::string& model_file() const { return model_file_; }
  const Dict& model_states();
  /// model_states()[key], or a UsageError naming the file and the missing entry.
  c10::IValue model_entry(const std::string& key);

  /// Rank r's "optimizer_state_dict" (UsageError naming the directory if that rank's file is missing).
  const Dict& rank_states(int rank);
  const std::string& rank_file(int rank);
  /// rank_states(rank)[key], or a UsageError naming the file.
  c10::IValue rank_entry(int rank, const std::string& key);

 private:
  struct RankFile {
    std::string path;
    Dict states = new_dict();
  };
  RankFile& rank(int r);

  std::string dir_;
  std::string model_file_;
  std::optional<Dict> model_states_;
  std::map<int, RankFile> ranks_;
};

/// load_checkpoint()'s flags: which parts of a checkpoint are restored.
struct LoadOptions {
  bool module_strict = true;
  bool optimizer_states = true;
  bool lr_scheduler_states = true;
  bool module_only = false;
  /// Optimizer state, fp32 master weights and the loss scale come back (otherwise the masters follow the weights).
  bool restores_optimizer() const { return optimizer_states && !module_only; }
};

/// A part of the job with checkpoint state. save() and load() are collective: every rank calls them, on the
/// same parts in the same order (a part may gather or all-gather inside).
class Stateful {
 public:
  virtual ~Stateful() = default;
  virtual void save(SaveTarget& target) = 0;
  virtual void load(LoadSource& source, const LoadOptions& options) = 0;
};

}  // namespace deepspeed::checkpoint
