#include "deepspeed/checkpoint/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/export.h>
#include <torch/csrc/jit/serialization/pickler.h>
#include <torch/serialize.h>

#include "deepspeed/util/error.h"
#include "deepspeed/util/strings.h"
#include "src/util/env.h"

namespace deepspeed::checkpoint {

using util::cat;
namespace fs = std::filesystem;

namespace {

// std::filesystem::remove_all crashes in programs linked with LibTorch's wheel (it exports its own copy of the
// filesystem symbols); a plain recursive walk does not.
void remove_tree(const fs::path& path) {
  std::error_code ec;
  if (fs::is_directory(fs::symlink_status(path, ec))) {
    for (const auto& entry : fs::directory_iterator(path, ec)) remove_tree(entry.path());
  }
  fs::remove(path, ec);
}

void fsync_path(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

[[noreturn]] void io_error(const std::string& what, const std::string& path) {
  throw JobError(cat("checkpoint: cannot ", what, " '", path, "': ", std::strerror(errno)));
}

}  // namespace

std::string model_states_name() { return "mp_rank_00_model_states.pt"; }

std::string optim_states_name(int dp_rank, bool bf16) {
  return cat(bf16 ? "bf16_" : "", "zero_pp_rank_", dp_rank, "_mp_rank_00_optim_states.pt");
}

std::string find_optim_states(const std::string& tag_dir, int dp_rank) {
  for (bool bf16 : {false, true}) {
    const auto path = (fs::path(tag_dir) / optim_states_name(dp_rank, bf16)).string();
    if (fs::exists(path)) return path;
  }
  throw UsageError(cat("checkpoint: '", tag_dir, "' has no optimizer shard for rank ", dp_rank, " (",
                       optim_states_name(dp_rank, false), "): an incomplete save, or the wrong directory"));
}

c10::IValue entry(const c10::impl::GenericDict& dict, const std::string& key, const std::string& file) {
  const auto it = dict.find(key);
  if (it == dict.end()) throw UsageError(cat("checkpoint: '", file, "' has no \"", key, "\" entry"));
  return it->value();
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  const std::string tmp = cat(path, ".tmp.", ::getpid());
  {
    std::FILE* f = std::fopen(tmp.c_str(), "wb");
    if (!f) io_error("create", tmp);
    const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size() && std::fflush(f) == 0 &&
                    ::fsync(::fileno(f)) == 0;
    std::fclose(f);
    if (!ok) io_error("write", tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) io_error("rename into", path);
  fsync_path(fs::path(path).parent_path().string(), true);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError(cat("checkpoint: cannot read '", path, "'"));
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void save_ivalue(const c10::IValue& value, const std::string& path) {
  const std::vector<char> bytes = torch::pickle_save(value);
  write_file_atomic(path, std::string(bytes.begin(), bytes.end()));
}

c10::IValue load_ivalue(const std::string& path) {
  const std::string bytes = read_file(path);
  try {
    return torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end()));
  } catch (const std::exception& e) {
    throw UsageError(cat("checkpoint: '", path, "' is not a readable checkpoint file: ", describe(e)));
  }
}

c10::IValue json_to_ivalue(const nlohmann::json& j) {
  if (j.is_boolean()) return j.get<bool>();
  if (j.is_number_integer()) return j.get<std::int64_t>();
  if (j.is_number()) return j.get<double>();
  if (j.is_string()) return j.get<std::string>();
  if (j.is_array()) {
    c10::impl::GenericList list(c10::AnyType::get());
    for (const auto& item : j) list.push_back(json_to_ivalue(item));
    return list;
  }
  if (j.is_object()) {
    c10::impl::GenericDict dict(c10::StringType::get(), c10::AnyType::get());
    for (const auto& [key, value] : j.items()) dict.insert(key, json_to_ivalue(value));
    return dict;
  }
  return c10::IValue();
}

nlohmann::json ivalue_to_json(const c10::IValue& v) {
  if (v.isBool()) return v.toBool();
  if (v.isInt()) return v.toInt();
  if (v.isDouble()) return v.toDouble();
  if (v.isString()) return v.toStringRef();
  if (v.isList()) {
    auto out = nlohmann::json::array();
    for (const auto& item : v.toList()) out.push_back(ivalue_to_json(item));
    return out;
  }
  if (v.isTuple()) {
    auto out = nlohmann::json::array();
    for (const auto& item : v.toTupleRef().elements()) out.push_back(ivalue_to_json(item));
    return out;
  }
  if (v.isGenericDict()) {
    auto out = nlohmann::json::object();
    for (const auto& item : v.toGenericDict()) out[item.key().toStringRef()] = ivalue_to_json(item.value());
    return out;
  }
  return nullptr;
}

void save_state_dict(const std::vector<std::pair<std::string, at::Tensor>>& state, const std::string& path) {
  c10::impl::GenericDict dict(c10::StringType::get(), c10::TensorType::get());
  for (const auto& [name, tensor] : state) dict.insert(name, tensor.contiguous());
  // torch::pickle_save tags containers with their TorchScript types (torch.jit._pickle.restore_type_tag),
  // which torch.load(weights_only=True) — PyTorch's default since 2.6 — refuses. A state dict needs no tags.
  std::vector<char> pickle;
  torch::jit::Pickler pickler([&](const char* data, std::size_t size) { pickle.insert(pickle.end(), data, data + size); },
                              nullptr, nullptr, nullptr, nullptr, /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(dict);
  pickler.stop();
  std::string bytes;
  {
    caffe2::serialize::PyTorchStreamWriter writer([&](const void* data, std::size_t size) {
      bytes.append(static_cast<const char*>(data), size);
      return size;
    });
    torch::jit::writeArchiveAndTensors("data", pickle.data(), pickle.size(), pickler.tensorData(), writer);
    writer.writeEndOfFile();
  }
  write_file_atomic(path, bytes);
}

std::string staging_dir(const std::string& save_dir, const std::string& tag) {
  return (fs::path(save_dir) / ("." + tag + ".partial")).string();
}

void begin_save(const std::string& save_dir, const std::string& tag) {
  std::error_code ec;
  fs::create_directories(save_dir, ec);
  if (ec) throw UsageError(cat("save_checkpoint: cannot create '", save_dir, "': ", ec.message()));
  const fs::path stage = staging_dir(save_dir, tag);
  remove_tree(stage);  // left by a save that crashed
  fs::create_directories(stage, ec);
  if (ec) throw UsageError(cat("save_checkpoint: cannot create '", stage.string(), "': ", ec.message()));
}

void commit_save(const std::string& save_dir, const std::string& tag, bool save_latest) {
  const fs::path dir(save_dir);
  const fs::path final_dir = dir / tag;
  const fs::path old = dir / ("." + tag + ".old");
  std::error_code ec;
  remove_tree(old);
  if (fs::exists(final_dir)) fs::rename(final_dir, old, ec);
  if (ec) throw JobError(cat("save_checkpoint: cannot move aside '", final_dir.string(), "': ", ec.message()));
  fs::rename(staging_dir(save_dir, tag), final_dir, ec);
  if (ec) throw JobError(cat("save_checkpoint: cannot publish '", final_dir.string(), "': ", ec.message()));
  fsync_path(save_dir, true);
  remove_tree(old);
  if (save_latest) write_file_atomic((dir / "latest").string(), tag);
}

std::optional<std::string> read_latest(const std::string& load_dir) {
  const fs::path latest = fs::path(load_dir) / "latest";
  if (!fs::exists(latest)) return std::nullopt;
  std::string tag = read_file(latest.string());
  while (!tag.empty() && (tag.back() == '\n' || tag.back() == ' ' || tag.back() == '\r')) tag.pop_back();
  return tag;
}

std::string resolve_tag_dir(const std::string& load_dir, const std::string& tag) {
  const fs::path dir = fs::path(load_dir) / tag;
  if (fs::is_directory(dir)) return dir.string();
  const fs::path old = fs::path(load_dir) / ("." + tag + ".old");
  if (fs::is_directory(old)) return old.string();
  throw UsageError(cat("load_checkpoint: no checkpoint directory '", dir.string(), "'"));
}

void fault_point(const char* where, int rank) {
  if (util::env_is("DS_CHECKPOINT_FAULT", cat(where, ":", rank).c_str())) std::_Exit(9);
}

}  // namespace deepspeed::checkpoint
