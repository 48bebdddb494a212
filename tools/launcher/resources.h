#pragma once
/// \file
/// Which hosts and slots a job uses: hostfile parsing, DeepSpeed's include/exclude syntax, --num_nodes /
/// --num_gpus, and the CUDA_VISIBLE_DEVICES rule. Pure functions over strings; errors are UsageErrors whose
/// message names the file/line or flag and what was expected.

#include <string>
#include <string_view>
#include <vector>

namespace deepspeed::launcher {

struct LaunchOptions;

/// A host and the number of slots (GPUs, or CPU rank slots) it offers; slots are numbered 0..slots-1.
struct HostSlots {
  std::string host;
  int slots = 0;
};

/// The available resources, in hostfile order (which is also the order ranks are assigned in).
struct ResourcePool {
  std::vector<HostSlots> hosts;
  /// Where the pool came from, for error messages: "hostfile /job/hostfile", "local resources (2 GPUs)".
  std::string source;
};

/// One node of the job: its host and the slot ids used there (sorted, unique, non-empty).
struct NodeSlots {
  std::string host;
  std::vector<int> slots;
  bool operator==(const NodeSlots&) const = default;
};

/// The job's nodes in rank order. Same content as DeepSpeed's world_info dict.
using WorldInfo = std::vector<NodeSlots>;

/// One NODE_SPEC of --include/--exclude: a host and the slots named for it (empty: the whole host).
struct NodeSpec {
  std::string host;
  std::vector<int> slots;
};

/// Parses hostfile text. Lines are stripped; empty lines and lines starting with '#' are skipped; every other
/// line must match `^(\S+)\s+slots=(\d+)` (anything after the number is ignored, like DeepSpeed). Throws
/// UsageError naming `path` and the 1-based line for a bad line, a duplicate host (and where it was first
/// listed), slots=0, a host name starting with '-', or a file without hosts.
ResourcePool parse_hostfile(std::string_view text, const std::string& path);

/// Parses NODE_SPEC[@NODE_SPEC...], NODE_SPEC = NAME[:SLOT[,SLOT...]]. Repeated hosts merge (slots are
/// united; a bare NAME means the whole host and wins). Slots come back sorted and unique, hosts in first-seen
/// order. `flag` (e.g. "--include") prefixes error messages.
std::vector<NodeSpec> parse_node_specs(std::string_view spec, std::string_view flag);

/// Applies --include or --exclude (at most one non-empty) to `pool` and returns the world in pool order.
/// Unlike DeepSpeed, every named host and slot is checked against the pool, so `--include localhost:7` on a
/// 2-GPU node fails naming slot 7. Throws UsageError when a host/slot is unknown or nothing is left.
/// `include_flag` names where the include string came from (the CUDA_VISIBLE_DEVICES rule passes its own).
WorldInfo resolve_resources(const ResourcePool& pool, const std::string& include, const std::string& exclude,
                            std::string_view include_flag = "--include");

/// Applies --num_nodes (first N nodes) and --num_gpus (slots [0, N) on every node); -1 leaves that
/// dimension alone. Throws UsageError when N exceeds the hosts in the pool or a host's slots (DeepSpeed
/// silently truncates or invents slots).
WorldInfo limit_resources(WorldInfo world, int num_nodes, int num_gpus, const ResourcePool& pool);

/// The pool used when there is no hostfile: one host, "localhost". GPU mode: `gpu_count` slots. CPU mode
/// (slots are rank slots with no hardware behind them): `num_gpus` when given, else enough slots for every
/// localhost slot `include` names, else 1.
ResourcePool local_pool(bool cpu_mode, int gpu_count, int num_gpus, const std::string& include);

/// What to do about CUDA_VISIBLE_DEVICES before resolving resources (DeepSpeed runner.py's rule).
struct VisibleDevicesRule {
  std::string include;  ///< non-empty: use this as --include
  std::string message;  ///< line to print ("" = nothing to say)
};

/// No hostfile and a non-empty CUDA_VISIBLE_DEVICES: without --include/--exclude/--num_gpus/--num_nodes it
/// becomes `--include=localhost:<CVD>`; with any of them it is ignored (with DeepSpeed's message). Slot ids
/// are physical GPU ids either way: GPU detection ignores the variable and GPU-mode children get
/// CUDA_VISIBLE_DEVICES from the selected slots.
VisibleDevicesRule visible_devices_rule(std::string_view cuda_visible_devices, bool hostfile_found,
                                        const LaunchOptions& options);

/// "0-3" for contiguous ids, "0,2,5" otherwise; "none" when empty. Used in messages.
std::string describe_slots(const std::vector<int>& slots);

}  // namespace deepspeed::launcher
