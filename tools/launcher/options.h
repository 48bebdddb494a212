#pragma once
/// \file
/// The launcher's command line: `deepspeed [launcher flags] program [program args...]`.
///
/// Parsing follows DeepSpeed's argparse front end (runner.py): `--flag value` and `--flag=value`, short
/// `-H/-i/-e/-q` with attached or separate values, unambiguous prefixes of long flags (`--num_g 2`), and the
/// first non-flag word starts the user program, after which nothing is interpreted. Every mistake is a
/// UsageError whose one-line message names the flag and what was expected.

#include <optional>
#include <string>
#include <vector>

namespace deepspeed::launcher {

/// Multi-node back ends. kSsh (one ssh per node, each running a per-node agent) is the default.
enum class Backend { kSsh, kPdsh, kOpenMpi, kSlurm };

/// "ssh", "pdsh", "openmpi" or "slurm".
const char* backend_name(Backend backend);

/// Everything the command line can say. Integer fields use -1 for "not given", as DeepSpeed does.
struct LaunchOptions {
  std::string hostfile = "/job/hostfile";
  std::string include;          ///< NODE_SPEC[@NODE_SPEC...]; "" = not given
  std::string exclude;          ///< same syntax as include; "" = not given
  int num_nodes = -1;           ///< first N hosts of the hostfile
  int num_gpus = -1;            ///< slots [0, N) on every host (CPU mode: N ranks)
  int master_port = 29500;
  std::string master_addr;      ///< "" = derive (127.0.0.1 single node, first host multi-node)
  int node_rank = -1;           ///< with no_ssh: which node of the world this process launches
  Backend backend = Backend::kSsh;
  std::string launcher_args;    ///< extra arguments for ssh/pdsh/mpirun/srun, shell-split
  std::optional<int> ssh_port;
  std::string venv_script;      ///< sourced on every remote node before the agent starts
  bool no_ssh = false;
  bool no_local_rank = false;
  bool no_ssh_check = false;
  bool force_multi = false;
  bool save_pid = false;
  std::optional<std::string> rank_log_dir;  ///< --enable_each_rank_log
  bool bind_cores_to_rank = false;
  std::optional<std::string> bind_core_list;
  std::string log_level;  ///< debug|info|warning|error|critical (-q = error); "" = DEEPSPEED_LOG_LEVEL or info
  bool help = false;

  /// Internal (per-node agent, never typed by users): base64 world info from the launcher on node 0.
  std::string world_info;
  /// Internal (pdsh agents): this node's host name as listed in the world info, instead of --node_rank.
  std::string node_host;
  /// Internal: terminate the node's ranks when stdin reaches EOF (the ssh connection to the launcher closed).
  bool stdin_watchdog = false;

  std::string program;                    ///< the user program (an executable)
  std::vector<std::string> program_args;  ///< passed to the program untouched
};

/// Parses argv[1..] (pass `args` without the launcher's own name). Returns options with `help` set when
/// -h/--help was given (the program may then be empty). Throws UsageError for unknown or ambiguous flags,
/// missing or malformed values, flags DeepSpeed has but this launcher does not support (--module,
/// --autotuning, --elastic_training, the MPI variants other than openmpi), a missing program, and the
/// mutually exclusive combinations (--include with --exclude; either with --num_nodes/--num_gpus).
LaunchOptions parse_launcher_args(const std::vector<std::string>& args);

/// The --help text.
std::string launcher_usage();

}  // namespace deepspeed::launcher
