#pragma once
/// \file
/// The job's world (nodes and slots) as it travels to per-node agents, and what each rank is told about it:
/// its environment variables and argv. Pure functions.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "resources.h"

namespace deepspeed::launcher {

using EnvVars = std::vector<std::pair<std::string, std::string>>;

/// Base64url (with padding) of the JSON object {"host": [slot, ...], ...} in node order: the same string
/// DeepSpeed's runner passes as --world_info, so agents of either implementation can read it.
std::string encode_world_info(const WorldInfo& world);

/// Inverse of encode_world_info(). Accepts standard or URL-safe base64, padded or not. Throws UsageError
/// ("--world_info: ...") when the text is not base64 of a JSON object of non-empty slot-id lists.
WorldInfo decode_world_info(std::string_view encoded);

/// One process to start on a node.
struct RankAssignment {
  int rank = 0;        ///< global rank: ranks are numbered node by node in world order, slot by slot
  int local_rank = 0;  ///< index of the slot within its node (0..LOCAL_SIZE-1)
  int slot = 0;        ///< the slot id (GPU id in GPU mode)
  EnvVars env;         ///< variables to set for this rank, on top of the parent environment
};

/// The ranks of node `node_rank` with their environment: MASTER_ADDR, MASTER_PORT, WORLD_SIZE (all slots),
/// CROSS_RANK (= node_rank), CROSS_SIZE (= nodes), LOCAL_SIZE (slots on this node), RANK, LOCAL_RANK and, in
/// GPU mode, CUDA_VISIBLE_DEVICES = every selected slot of this node, comma-separated (each rank then uses
/// cuda:LOCAL_RANK). LOCAL_RANK is the position on the node; DeepSpeed's RANK % LOCAL_SIZE differs from it
/// on uneven worlds. Requires 0 <= node_rank < world.size().
std::vector<RankAssignment> plan_node_ranks(const WorldInfo& world, int node_rank, const std::string& master_addr,
                                            int master_port, bool gpu_mode);

/// argv of one rank: program, then `--local_rank=<local_rank>` unless `no_local_rank`, then the user args.
std::vector<std::string> rank_argv(const std::string& program, const std::vector<std::string>& program_args,
                                   int local_rank, bool no_local_rank);

/// `parent` (KEY=VALUE strings) with `overrides` applied: existing keys are replaced where they stand, new
/// ones appended in order.
std::vector<std::string> merge_environment(const std::vector<std::string>& parent, const EnvVars& overrides);

/// Variables every rank gets unless the parent environment already sets them: NCCL_NVLS_ENABLE=0 (NVLink
/// SHARP multicast is unavailable on the project's GPU hosts and NCCL aborts if it tries).
EnvVars default_rank_env(const std::vector<std::string>& parent);

/// Looks a KEY up in KEY=VALUE strings; nullptr when absent.
const char* find_env(const std::vector<std::string>& env, std::string_view key);

}  // namespace deepspeed::launcher
