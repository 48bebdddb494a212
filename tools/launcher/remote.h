#pragma once
/// \file
/// Multi-node command building: which environment travels to remote nodes, and the exact argv of ssh, pdsh,
/// mpirun and srun. Pure functions; nothing here runs a process.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "world.h"

namespace deepspeed::launcher {

/// Launcher environment variables exported to every remote node: those starting with NCCL, PYTHON, MLFLOW,
/// MV2, UCX (DeepSpeed's list), DEEPSPEED_, DS_, GLOO_ or TORCH_ (every rank must see the same switches), and
/// OMP_NUM_THREADS. As in DeepSpeed, NCCL_IB_HCA and UCX_NET_DEVICES stay home when AISC_JOB_NAME is set
/// (nodes of those clusters configure them individually). Order follows `environ`.
EnvVars select_exports(const std::vector<std::string>& environ);

/// Parses a .deepspeed_env file: KEY=VALUE per line (split at the first '=', both sides stripped). Blank
/// lines and '#' comments are skipped. Throws UsageError naming `path` and the line when a line has no '='
/// or an empty or non-identifier KEY.
EnvVars parse_env_file(std::string_view text, const std::string& path);

/// Where .deepspeed_env files are looked for, in order (later files override earlier ones): the name in
/// DS_ENV_FILE (default ".deepspeed_env") under `home`, then under the current directory; an absolute
/// DS_ENV_FILE is used alone. `ds_env_file` and `home` may be null.
std::vector<std::string> env_file_candidates(const char* ds_env_file, const char* home);

/// What every node's agent runs.
struct AgentCommand {
  std::string cwd;                        ///< directory on the remote node (the launcher's cwd)
  EnvVars exports;                        ///< exported before the agent starts
  std::string venv_script;                ///< sourced first when non-empty
  std::string agent_path;                 ///< path of the deepspeed binary on the remote node
  std::string world_info;                 ///< encode_world_info() of the job
  std::string master_addr;
  int master_port = 29500;
  std::vector<std::string> agent_flags;   ///< forwarded launcher flags, e.g. "--no_local_rank"
  std::string program;
  std::vector<std::string> program_args;
};

/// The shell command line run on a node:
///   cd CWD || exit 1; export K=V; ...; [. VENV;] exec AGENT --no_ssh NODE_ARG --world_info=.. --master_addr=..
///   --master_port=.. FLAGS... PROGRAM ARGS...
/// Every word (paths, values, host-derived text, user arguments) is shell_quote()d. `node_arg` is the
/// agent's node selector, e.g. "--node_rank=1".
std::string agent_shell_command(const AgentCommand& command, const std::string& node_arg);

/// `ssh -o BatchMode=yes [-p PORT] EXTRA... HOST REMOTE_COMMAND`. BatchMode makes ssh fail instead of
/// waiting for a password prompt nobody will answer.
std::vector<std::string> ssh_argv(const std::string& host, std::optional<int> port,
                                  const std::vector<std::string>& extra_args, const std::string& remote_command);

/// The reachability check: `ssh -o BatchMode=yes -o ConnectTimeout=10 [-p PORT] EXTRA... HOST true`.
std::vector<std::string> ssh_check_argv(const std::string& host, std::optional<int> port,
                                        const std::vector<std::string>& extra_args);

/// `pdsh -S -f 1024 -w HOST,HOST EXTRA... CMD`. pdsh expands %h/%u/%n in arguments, so the agent command is
/// built with "--node_host=%h" (the agent finds its node by name, robust to pdsh reordering hosts) and every
/// other '%' is doubled.
std::vector<std::string> pdsh_argv(const WorldInfo& world, const std::vector<std::string>& extra_args,
                                   const AgentCommand& command);

/// What SIGTERMs this job's agents on every pdsh host when the launcher stops early: `pkill -f` on the
/// job's unique --world_info/--master_port words.
std::vector<std::string> pdsh_kill_argv(const WorldInfo& world, const std::vector<std::string>& extra_args,
                                        const AgentCommand& command);

/// `mpirun -n TOTAL -hostfile HOSTFILE --mca btl ^openib [--mca btl_tcp_if_include eth0] EXTRA...
/// -x K=V... -x MASTER_ADDR=.. -x MASTER_PORT=.. PROGRAM ARGS` (DeepSpeed's OpenMPI runner; the program reads
/// OMPI_COMM_WORLD_RANK/SIZE/LOCAL_RANK). The eth0 default is dropped when EXTRA sets btl_tcp_if_include.
std::vector<std::string> mpirun_argv(const WorldInfo& world, const std::string& hostfile,
                                     const std::vector<std::string>& extra_args, const EnvVars& exports,
                                     const std::string& master_addr, int master_port, const std::string& program,
                                     const std::vector<std::string>& program_args);

/// `srun -n TOTAL [--nodes N] EXTRA... --export=ALL PROGRAM ARGS` (the program reads SLURM_PROCID,
/// SLURM_NTASKS, SLURM_LOCALID). srun's own environment carries the exports and MASTER_ADDR/MASTER_PORT
/// (--export=ALL forwards it), which avoids --export's comma splitting of values. `num_nodes` <= 0 omits
/// --nodes.
std::vector<std::string> srun_argv(const WorldInfo& world, int num_nodes, const std::vector<std::string>& extra_args,
                                   const std::string& program, const std::vector<std::string>& program_args);

}  // namespace deepspeed::launcher
