#include "resources.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <set>

#include "deepspeed/util/error.h"
#include "deepspeed/util/strings.h"
#include "options.h"

namespace deepspeed::launcher {
namespace {

using util::cat;

constexpr int kMaxSlots = 1 << 20;

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string_view strip(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

/// Non-negative decimal integer below kMaxSlots, or -1.
int parse_slot_number(std::string_view text) {
  int value = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() || value < 0 || value >= kMaxSlots) {
    return -1;
  }
  return value;
}

std::vector<int> all_slots(int count) {
  std::vector<int> slots(static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) slots[static_cast<std::size_t>(i)] = i;
  return slots;
}

std::string host_names(const ResourcePool& pool) {
  std::string names;
  for (const auto& h : pool.hosts) names += (names.empty() ? "" : ", ") + h.host;
  return names;
}

const HostSlots& find_host(const ResourcePool& pool, const std::string& host, std::string_view flag) {
  for (const auto& h : pool.hosts) {
    if (h.host == host) return h;
  }
  throw UsageError(cat(flag, ": host '", host, "' is not in ", pool.source, " (hosts: ", host_names(pool), ")"));
}

}  // namespace

std::string describe_slots(const std::vector<int>& slots) {
  if (slots.empty()) return "none";
  bool contiguous = true;
  for (std::size_t i = 1; i < slots.size(); ++i) contiguous = contiguous && slots[i] == slots[i - 1] + 1;
  if (contiguous) {
    return slots.size() == 1 ? std::to_string(slots.front()) : cat(slots.front(), "-", slots.back());
  }
  std::string text;
  for (int s : slots) text += (text.empty() ? "" : ",") + std::to_string(s);
  return text;
}

ResourcePool parse_hostfile(std::string_view text, const std::string& path) {
  ResourcePool pool;
  pool.source = "hostfile " + path;
  std::map<std::string, int> first_line;
  int line_number = 0;
  for (const auto& raw : util::split(text, '\n')) {
    ++line_number;
    const std::string_view line = strip(raw);
    if (line.empty() || line.front() == '#') continue;
    const auto where = cat("hostfile ", path, " line ", line_number);
    // ^(\S+)\s+slots=(\d+) — trailing text after the digits is allowed, as in DeepSpeed.
    std::size_t host_end = 0;
    while (host_end < line.size() && !is_space(line[host_end])) ++host_end;
    std::size_t pos = host_end;
    while (pos < line.size() && is_space(line[pos])) ++pos;
    std::size_t digits_end = pos + 6;
    const bool has_key = pos > host_end && line.substr(pos, 6) == "slots=";
    while (has_key && digits_end < line.size() && line[digits_end] >= '0' && line[digits_end] <= '9') ++digits_end;
    if (!has_key || digits_end == pos + 6) {
      throw UsageError(cat(where, ": expected 'HOST slots=N', got '", line, "'"));
    }
    const std::string host(line.substr(0, host_end));
    const int slots = parse_slot_number(line.substr(pos + 6, digits_end - pos - 6));
    if (host.front() == '-') {
      throw UsageError(cat(where, ": host name '", host, "' must not start with '-'"));
    }
    if (slots <= 0) {
      throw UsageError(cat(where, ": host '", host, "' needs slots between 1 and ", kMaxSlots - 1, ", got '",
                           line.substr(pos + 6, digits_end - pos - 6), "'"));
    }
    if (const auto it = first_line.find(host); it != first_line.end()) {
      throw UsageError(cat(where, ": host '", host, "' is listed twice (first on line ", it->second, ")"));
    }
    first_line.emplace(host, line_number);
    pool.hosts.push_back({host, slots});
  }
  if (pool.hosts.empty()) {
    throw UsageError(cat("hostfile ", path, " lists no hosts (expected lines like 'worker-0 slots=4')"));
  }
  return pool;
}

std::vector<NodeSpec> parse_node_specs(std::string_view spec, std::string_view flag) {
  std::vector<NodeSpec> specs;
  std::vector<bool> whole_host;
  for (const auto& part : util::split(spec, '@')) {
    if (part.empty()) throw UsageError(cat(flag, ": empty node spec in '", spec, "' (expected NAME[:SLOT,...]@...)"));
    const auto colon = part.find(':');
    const std::string host = part.substr(0, colon);
    if (host.empty()) throw UsageError(cat(flag, ": missing host name in '", part, "'"));
    std::vector<int> slots;
    if (colon != std::string::npos) {
      const std::string list = part.substr(colon + 1);
      if (list.empty()) throw UsageError(cat(flag, ": expected slot numbers after '", host, ":'"));
      if (list.find(':') != std::string::npos) {
        throw UsageError(cat(flag, ": '", part, "' has more than one ':' (expected NAME:SLOT[,SLOT...])"));
      }
      for (const auto& item : util::split(list, ',')) {
        const int slot = parse_slot_number(strip(item));
        if (slot < 0) {
          throw UsageError(cat(flag, ": slot '", item, "' of host '", host, "' is not a non-negative integer"));
        }
        slots.push_back(slot);
      }
    }
    auto it = std::find_if(specs.begin(), specs.end(), [&](const NodeSpec& s) { return s.host == host; });
    if (it == specs.end()) {
      specs.push_back({host, {}});
      whole_host.push_back(false);
      it = specs.end() - 1;
    }
    const auto index = static_cast<std::size_t>(it - specs.begin());
    whole_host[index] = whole_host[index] || slots.empty();
    it->slots.insert(it->slots.end(), slots.begin(), slots.end());
  }
  for (std::size_t i = 0; i < specs.size(); ++i) {
    auto& slots = specs[i].slots;
    if (whole_host[i]) {
      slots.clear();
    } else {
      std::sort(slots.begin(), slots.end());
      slots.erase(std::unique(slots.begin(), slots.end()), slots.end());
    }
  }
  return specs;
}

WorldInfo resolve_resources(const ResourcePool& pool, const std::string& include, const std::string& exclude,
                            std::string_view include_flag) {
  if (!include.empty() && !exclude.empty()) throw UsageError("--include and --exclude are mutually exclusive");
  std::map<std::string, std::set<int>> chosen;
  if (include.empty()) {
    for (const auto& h : pool.hosts) {
      const auto slots = all_slots(h.slots);
      chosen[h.host].insert(slots.begin(), slots.end());
    }
  }
  const bool including = !include.empty();
  const std::string_view flag = including ? include_flag : std::string_view("--exclude");
  if (including || !exclude.empty()) {
    for (const auto& spec : parse_node_specs(including ? include : exclude, flag)) {
      const HostSlots& host = find_host(pool, spec.host, flag);
      for (int slot : spec.slots) {
        if (slot >= host.slots) {
          throw UsageError(cat(flag, ": host '", host.host, "' has no slot ", slot, " (", pool.source, " gives it slots ",
                               describe_slots(all_slots(host.slots)), ")"));
        }
      }
      const auto named = spec.slots.empty() ? all_slots(host.slots) : spec.slots;
      auto& set = chosen[host.host];
      for (int slot : named) {
        if (including) set.insert(slot); else set.erase(slot);
      }
    }
  }
  WorldInfo world;
  for (const auto& h : pool.hosts) {
    const auto it = chosen.find(h.host);
    if (it != chosen.end() && !it->second.empty()) world.push_back({h.host, {it->second.begin(), it->second.end()}});
  }
  if (world.empty()) {
    throw UsageError(cat(flag, " '", including ? include : exclude, "' leaves no slots to run on in ", pool.source));
  }
  return world;
}

WorldInfo limit_resources(WorldInfo world, int num_nodes, int num_gpus, const ResourcePool& pool) {
  if (num_nodes > 0) {
    if (static_cast<std::size_t>(num_nodes) > world.size()) {
      throw UsageError(cat("--num_nodes ", num_nodes, ": ", pool.source, " has only ", world.size(),
                           world.size() == 1 ? " host" : " hosts"));
    }
    world.resize(static_cast<std::size_t>(num_nodes));
  }
  if (num_gpus > 0) {
    for (auto& node : world) {
      const auto it = std::find_if(pool.hosts.begin(), pool.hosts.end(),
                                   [&](const HostSlots& h) { return h.host == node.host; });
      const int available = it == pool.hosts.end() ? 0 : it->slots;
      if (num_gpus > available) {
        throw UsageError(cat("--num_gpus ", num_gpus, ": host '", node.host, "' has only ", available, " slot",
                             available == 1 ? "" : "s", " in ", pool.source));
      }
      node.slots = all_slots(num_gpus);
    }
  }
  return world;
}

ResourcePool local_pool(bool cpu_mode, int gpu_count, int num_gpus, const std::string& include) {
  ResourcePool pool;
  if (!cpu_mode) {
    pool.hosts.push_back({"localhost", gpu_count});
    pool.source = cat("local resources (", gpu_count, gpu_count == 1 ? " GPU" : " GPUs", " detected)");
    return pool;
  }
  int slots = 1;
  if (num_gpus > 0) {
    slots = num_gpus;
  } else if (!include.empty()) {
    for (const auto& spec : parse_node_specs(include, "--include")) {
      if (spec.host != "localhost") continue;
      for (int s : spec.slots) slots = std::max(slots, s + 1);
    }
  }
  pool.hosts.push_back({"localhost", slots});
  pool.source = cat("local resources (CPU mode, ", slots, slots == 1 ? " rank slot)" : " rank slots)");
  return pool;
}

VisibleDevicesRule visible_devices_rule(std::string_view cuda_visible_devices, bool hostfile_found,
                                        const LaunchOptions& options) {
  VisibleDevicesRule rule;
  if (hostfile_found || cuda_visible_devices.empty()) return rule;
  const std::string detected = cat("Detected VISIBLE_DEVICES=", cuda_visible_devices);
  // DeepSpeed tests num_nodes > 1 and num_gpus > 0; with --num_nodes 1 it then rejects its own include.
  // Any explicit resource flag wins here instead.
  const bool explicit_resources = !options.include.empty() || !options.exclude.empty() || options.num_gpus >= 0 ||
                                  options.num_nodes >= 0;
  if (explicit_resources) {
    rule.message = detected +
                   " but ignoring it because one or several of --include/--exclude/--num_gpus/--num_nodes cl args "
                   "were used. If you want to use CUDA_VISIBLE_DEVICES don't pass any of these arguments to deepspeed.";
  } else {
    rule.include = cat("localhost:", cuda_visible_devices);
    rule.message = cat(detected, ": setting --include=", rule.include);
  }
  return rule;
}

}  // namespace deepspeed::launcher
