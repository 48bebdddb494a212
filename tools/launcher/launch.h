#pragma once
/// \file
/// The launcher's top level: from parsed options to a running, supervised job.

#include <string>

#include "options.h"
#include "resources.h"

namespace deepspeed::launcher {

/// What the launch decided that the multi-node back ends need too.
struct LaunchContext {
  std::string hostfile;        ///< the -H path
  bool hostfile_found = false;
  double grace_seconds = 30;   ///< DS_KILL_GRACE_SECONDS
};

/// Runs the job described by `options` and returns the launcher's exit code (the first failing rank's code,
/// 128+signal when stopped by a signal, 0 on success). Throws UsageError for anything the user must fix.
int launch(const LaunchOptions& options);

/// Starts this node's ranks of `world` (node `node_rank`) and supervises them. Used for single-node jobs,
/// --no_ssh, and by the per-node agent of a multi-node job.
int run_node(const LaunchOptions& options, const WorldInfo& world, int node_rank, const std::string& master_addr,
             const LaunchContext& context);

/// Starts one agent per node through the --launcher back end (ssh, pdsh, openmpi, slurm) and supervises it.
int launch_multinode(const LaunchOptions& options, const WorldInfo& world, const LaunchContext& context);

}  // namespace deepspeed::launcher
