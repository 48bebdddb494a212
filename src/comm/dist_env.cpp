#include "deepspeed/comm/dist_env.h"

#include <cstdlib>

#include "deepspeed/util/error.h"
#include "deepspeed/util/strings.h"

namespace deepspeed::comm {

using util::cat;

namespace {

int parse_int(const EnvLookup& env, const char* name, const std::string& value) {
  char* end = nullptr;
  const long parsed = std::strtol(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0' || parsed < 0 || parsed > 1 << 24) {
    throw UsageError(cat("environment variable ", name, "=\"", value, "\" is not a non-negative integer"));
  }
  return static_cast<int>(parsed);
}

std::optional<int> get_int(const EnvLookup& env, const char* name) {
  const auto value = env(name);
  if (!value) return std::nullopt;
  return parse_int(env, name, *value);
}

int require_int(const EnvLookup& env, const char* name, const char* because) {
  const auto value = get_int(env, name);
  if (!value) throw UsageError(cat("environment variable ", name, " is not set but ", because, " is"));
  return *value;
}

}  // namespace

EnvLookup process_env() {
  return [](const char* name) -> std::optional<std::string> {
    const char* v = std::getenv(name);
    if (!v) return std::nullopt;
    return std::string(v);
  };
}

std::string first_slurm_host(const std::string& nodelist) {
  // Only the first entry matters; a bracket range gives its first index with its zero padding.
  const auto comma = nodelist.find(',');
  const auto bracket = nodelist.find('[');
  if (bracket == std::string::npos || (comma != std::string::npos && comma < bracket)) {
    return nodelist.substr(0, comma);
  }
  const std::string prefix = nodelist.substr(0, bracket);
  const auto end = nodelist.find_first_of("-,]", bracket + 1);
  return prefix + nodelist.substr(bracket + 1, end - bracket - 1);
}

DistEnv resolve_dist_env(const EnvLookup& env, int default_port) {
  DistEnv d;
  d.master_port = default_port;
  if (env("RANK") || env("WORLD_SIZE")) {
    d.source = "deepspeed launcher";
    d.rank = require_int(env, "RANK", "WORLD_SIZE");
    d.world_size = require_int(env, "WORLD_SIZE", "RANK");
    d.local_rank = get_int(env, "LOCAL_RANK").value_or(d.rank);
    d.local_size = get_int(env, "LOCAL_SIZE").value_or(d.world_size);
  } else if (env("OMPI_COMM_WORLD_RANK")) {
    d.source = "OpenMPI";
    d.rank = require_int(env, "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_RANK");
    d.world_size = require_int(env, "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK");
    d.local_rank = get_int(env, "OMPI_COMM_WORLD_LOCAL_RANK").value_or(d.rank);
    d.local_size = get_int(env, "OMPI_COMM_WORLD_LOCAL_SIZE").value_or(d.world_size);
  } else if (env("PMI_RANK")) {
    d.source = "MPICH/PMI";
    d.rank = require_int(env, "PMI_RANK", "PMI_RANK");
    d.world_size = require_int(env, "PMI_SIZE", "PMI_RANK");
    d.local_rank = get_int(env, "MPI_LOCALRANKID").value_or(d.rank);
    d.local_size = get_int(env, "MPI_LOCALNRANKS").value_or(d.world_size);
  } else if (env("SLURM_PROCID")) {
    d.source = "Slurm";
    d.rank = require_int(env, "SLURM_PROCID", "SLURM_PROCID");
    d.world_size = require_int(env, "SLURM_NTASKS", "SLURM_PROCID");
    d.local_rank = get_int(env, "SLURM_LOCALID").value_or(0);
    d.local_size = get_int(env, "SLURM_NTASKS_PER_NODE").value_or(d.world_size);
    if (!env("MASTER_ADDR")) {
      if (const auto nodes = env("SLURM_JOB_NODELIST")) d.master_addr = first_slurm_host(*nodes);
      else if (const auto nodes2 = env("SLURM_NODELIST")) d.master_addr = first_slurm_host(*nodes2);
    }
  }
  if (d.world_size < 1) throw UsageError("environment variable WORLD_SIZE must be at least 1");
  if (d.rank >= d.world_size) {
    throw UsageError(cat("rank ", d.rank, " is not below the world size ", d.world_size, " (from ", d.source, ")"));
  }
  if (d.world_size > 1 && d.source != "Slurm" && d.local_size < d.world_size && !env("MASTER_ADDR")) {
    throw UsageError(cat("environment variable MASTER_ADDR is not set; a multi-node job (from ", d.source,
                         ") needs the address of rank 0"));
  }
  if (const auto addr = env("MASTER_ADDR")) d.master_addr = *addr;
  if (const auto port = get_int(env, "MASTER_PORT")) d.master_port = *port;
  return d;
}

std::chrono::milliseconds collective_timeout(const EnvLookup& env) {
  const auto value = env("DEEPSPEED_TIMEOUT");
  if (!value) return std::chrono::minutes(30);
  char* end = nullptr;
  const double minutes = std::strtod(value->c_str(), &end);
  if (value->empty() || *end != '\0' || !(minutes > 0)) {
    throw UsageError(cat("environment variable DEEPSPEED_TIMEOUT=\"", *value, "\" is not a positive number of minutes"));
  }
  return std::chrono::milliseconds(static_cast<long long>(minutes * 60000.0));
}

}  // namespace deepspeed::comm
