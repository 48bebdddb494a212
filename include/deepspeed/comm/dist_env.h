#pragma once
/// \file
/// Where this process sits in the job, read from the environment the launcher (or mpirun, or srun) set.
/// Pure: takes an environment lookup so it is tested without touching the real environment.

#include <chrono>
#include <functional>
#include <optional>
#include <string>

namespace deepspeed::comm {

struct DistEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  /// Who set the variables: "deepspeed launcher", "OpenMPI", "MPICH/PMI", "Slurm" or "none" (one process).
  std::string source = "none";
};

using EnvLookup = std::function<std::optional<std::string>(const char* name)>;

/// The process environment.
EnvLookup process_env();

/// Resolves the job layout, in DeepSpeed's order of preference: the launcher's RANK/WORLD_SIZE/LOCAL_RANK/
/// MASTER_ADDR/MASTER_PORT, then OpenMPI's OMPI_COMM_WORLD_*, then PMI_RANK/PMI_SIZE, then Slurm's SLURM_PROCID/
/// SLURM_NTASKS/SLURM_LOCALID; none of them → a single process. A partial or inconsistent set (RANK without
/// WORLD_SIZE, RANK ≥ WORLD_SIZE, a non-numeric value) → UsageError naming the variable.
/// `default_port` is used when MASTER_PORT is unset.
DistEnv resolve_dist_env(const EnvLookup& env, int default_port = 29500);

/// First host of a Slurm node list: "node[03-05,9],gpu1" → "node03".
std::string first_slurm_host(const std::string& nodelist);

/// Collective timeout: env DEEPSPEED_TIMEOUT in minutes (fractions allowed), default 30 minutes as DeepSpeed.
std::chrono::milliseconds collective_timeout(const EnvLookup& env);

}  // namespace deepspeed::comm
