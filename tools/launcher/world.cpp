#include "world.h"

#include <nlohmann/json.hpp>

#include "deepspeed/util/error.h"
#include "deepspeed/util/strings.h"

namespace deepspeed::launcher {
namespace {

using util::cat;

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string base64url_encode(std::string_view bytes) {
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(bytes[i]) << 16) | (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                       static_cast<unsigned char>(bytes[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i < bytes.size()) {
    unsigned v = static_cast<unsigned char>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) v |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-' || c == '+') return 62;
  if (c == '_' || c == '/') return 63;
  return -1;
}

std::string base64_decode(std::string_view text) {
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  std::string out;
  unsigned buffer = 0;
  int bits = 0;
  for (char c : text) {
    const int v = base64_value(c);
    if (v < 0) throw UsageError(cat("--world_info: '", c, "' is not a base64 character"));
    buffer = (buffer << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buffer >> bits) & 0xFF);
    }
  }
  return out;
}

}  // namespace

std::string encode_world_info(const WorldInfo& world) {
  // Python's json.dumps layout (", " and ": " separators) so the string matches DeepSpeed's.
  std::string json = "{";
  for (std::size_t n = 0; n < world.size(); ++n) {
    if (n > 0) json += ", ";
    json += nlohmann::json(world[n].host).dump() + ": [";
    for (std::size_t s = 0; s < world[n].slots.size(); ++s) {
      json += (s > 0 ? ", " : "") + std::to_string(world[n].slots[s]);
    }
    json += "]";
  }
  json += "}";
  return base64url_encode(json);
}

WorldInfo decode_world_info(std::string_view encoded) {
  const std::string text = base64_decode(encoded);
  const auto json = nlohmann::ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object() || json.empty()) {
    throw UsageError("--world_info: expected base64 of a JSON object {\"host\": [slot, ...], ...}");
  }
  WorldInfo world;
  for (const auto& [host, slots] : json.items()) {
    NodeSlots node{host, {}};
    if (!slots.is_array() || slots.empty()) throw UsageError(cat("--world_info: host '", host, "' has no slot list"));
    for (const auto& slot : slots) {
      if (!slot.is_number_integer() || slot.get<long long>() < 0) {
        throw UsageError(cat("--world_info: host '", host, "' has a slot that is not a non-negative integer"));
      }
      node.slots.push_back(slot.get<int>());
    }
    world.push_back(std::move(node));
  }
  return world;
}

std::vector<RankAssignment> plan_node_ranks(const WorldInfo& world, int node_rank, const std::string& master_addr,
                                            int master_port, bool gpu_mode) {
  int world_size = 0;
  int first_rank = 0;
  for (std::size_t n = 0; n < world.size(); ++n) {
    if (static_cast<int>(n) < node_rank) first_rank += static_cast<int>(world[n].slots.size());
    world_size += static_cast<int>(world[n].slots.size());
  }
  const NodeSlots& node = world.at(static_cast<std::size_t>(node_rank));
  const int local_size = static_cast<int>(node.slots.size());
  std::string visible;
  for (int slot : node.slots) visible += (visible.empty() ? "" : ",") + std::to_string(slot);

  std::vector<RankAssignment> ranks;
  for (int local = 0; local < local_size; ++local) {
    RankAssignment a;
    a.rank = first_rank + local;
    a.local_rank = local;
    a.slot = node.slots[static_cast<std::size_t>(local)];
    a.env = {{"MASTER_ADDR", master_addr},
             {"MASTER_PORT", std::to_string(master_port)},
             {"WORLD_SIZE", std::to_string(world_size)},
             {"CROSS_RANK", std::to_string(node_rank)},
             {"CROSS_SIZE", std::to_string(world.size())},
             {"LOCAL_SIZE", std::to_string(local_size)},
             {"RANK", std::to_string(a.rank)},
             {"LOCAL_RANK", std::to_string(local)}};
    if (gpu_mode) a.env.emplace_back("CUDA_VISIBLE_DEVICES", visible);
    ranks.push_back(std::move(a));
  }
  return ranks;
}

std::vector<std::string> rank_argv(const std::string& program, const std::vector<std::string>& program_args,
                                   int local_rank, bool no_local_rank) {
  std::vector<std::string> argv{program};
  if (!no_local_rank) argv.push_back(cat("--local_rank=", local_rank));
  argv.insert(argv.end(), program_args.begin(), program_args.end());
  return argv;
}

std::vector<std::string> merge_environment(const std::vector<std::string>& parent, const EnvVars& overrides) {
  std::vector<std::string> env = parent;
  for (const auto& [key, value] : overrides) {
    const std::string prefix = key + "=";
    bool replaced = false;
    for (auto& entry : env) {
      if (entry.rfind(prefix, 0) == 0) {
        entry = prefix + value;
        replaced = true;
      }
    }
    if (!replaced) env.push_back(prefix + value);
  }
  return env;
}

EnvVars default_rank_env(const std::vector<std::string>& parent) {
  EnvVars defaults;
  if (find_env(parent, "NCCL_NVLS_ENABLE") == nullptr) defaults.emplace_back("NCCL_NVLS_ENABLE", "0");
  return defaults;
}

const char* find_env(const std::vector<std::string>& env, std::string_view key) {
  for (const auto& entry : env) {
    if (entry.size() > key.size() && entry[key.size()] == '=' && std::string_view(entry).substr(0, key.size()) == key) {
      return entry.c_str() + key.size() + 1;
    }
  }
  return nullptr;
}

}  // namespace deepspeed::launcher
