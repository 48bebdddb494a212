#include "deepspeed/checkpoint/state.h"

#include <filesystem>

#include "deepspeed/checkpoint/files.h"

namespace deepspeed::checkpoint {

Dict new_dict() { return Dict(c10::StringType::get(), c10::AnyType::get()); }

Dict section(Dict& parent, const std::string& key) {
  const auto it = parent.find(key);
  if (it != parent.end()) return it->value().toGenericDict();
  Dict child = new_dict();
  parent.insert(key, child);
  return child;
}

LoadSource::LoadSource(std::string tag_dir)
    : dir_(std::move(tag_dir)), model_file_((std::filesystem::path(dir_) / model_states_name()).string()) {}

const Dict& LoadSource::model_states() {
  if (!model_states_) model_states_ = load_ivalue(model_file_).toGenericDict();
  return *model_states_;
}

c10::IValue LoadSource::model_entry(const std::string& key) { return entry(model_states(), key, model_file_); }

LoadSource::RankFile& LoadSource::rank(int r) {
  auto it = ranks_.find(r);
  if (it == ranks_.end()) {
    RankFile file;
    file.path = find_optim_states(dir_, r);
    file.states = entry(load_ivalue(file.path).toGenericDict(), "optimizer_state_dict", file.path).toGenericDict();
    it = ranks_.emplace(r, std::move(file)).first;
  }
  return it->second;
}

const Dict& LoadSource::rank_states(int r) { return rank(r).states; }
const std::string& LoadSource::rank_file(int r) { return rank(r).path; }
c10::IValue LoadSource::rank_entry(int r, const std::string& key) {
  RankFile& file = rank(r);
  return entry(file.states, key, file.path);
}

}  // namespace deepspeed::checkpoint
