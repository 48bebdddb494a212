#include "options.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <functional>

#include "deepspeed/util/error.h"
#include "deepspeed/util/strings.h"

namespace deepspeed::launcher {
namespace {

using util::cat;

/// One launcher flag: its spellings (canonical first), whether it consumes a value, and what it sets.
struct FlagSpec {
  std::vector<std::string> names;
  bool takes_value;
  std::function<void(LaunchOptions&, const std::string& value)> apply;
};

int parse_int(const std::string& flag, const std::string& value, int min, int max) {
  int parsed = 0;
  const char* end = value.data() + value.size();
  const auto [ptr, ec] = std::from_chars(value.data(), end, parsed);
  if (value.empty() || ec != std::errc() || ptr != end || parsed < min || parsed > max) {
    const std::string range = max == 65535 ? cat("an integer in [", min, ", ", max, "]") : cat("an integer >= ", min);
    throw UsageError(cat(flag, ": expected ", range, ", got '", value, "'"));
  }
  return parsed;
}

[[noreturn]] void unsupported(const std::string& flag, const std::string& why) {
  throw UsageError(cat(flag, " is not supported by deepspeed.cpp: ", why));
}

Backend parse_backend(const std::string& value) {
  std::string name = value;
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  if (name == "ssh") return Backend::kSsh;
  if (name == "pdsh") return Backend::kPdsh;
  if (name == "openmpi") return Backend::kOpenMpi;
  if (name == "slurm") return Backend::kSlurm;
  if (name == "mvapich" || name == "mpich" || name == "impi") {
    unsupported("--launcher " + value, "use ssh, pdsh, openmpi or slurm");
  }
  throw UsageError(cat("--launcher: expected one of ssh, pdsh, openmpi, slurm, got '", value, "'"));
}

std::vector<FlagSpec> flag_table() {
  using O = LaunchOptions;
  using V = const std::string&;
  return {
      {{"--hostfile", "-H"}, true, [](O& o, V v) { o.hostfile = v; }},
      {{"--include", "-i"}, true, [](O& o, V v) { o.include = v; }},
      {{"--exclude", "-e"}, true, [](O& o, V v) { o.exclude = v; }},
      {{"--num_nodes"}, true, [](O& o, V v) { o.num_nodes = parse_int("--num_nodes", v, 1, 1 << 20); }},
      {{"--num_gpus", "--num_accelerators"}, true,
       [](O& o, V v) { o.num_gpus = parse_int("--num_gpus", v, 1, 1 << 20); }},
      {{"--master_port"}, true, [](O& o, V v) { o.master_port = parse_int("--master_port", v, 1, 65535); }},
      {{"--master_addr"}, true, [](O& o, V v) { o.master_addr = v; }},
      {{"--node_rank"}, true, [](O& o, V v) { o.node_rank = parse_int("--node_rank", v, 0, 1 << 20); }},
      {{"--launcher"}, true, [](O& o, V v) { o.backend = parse_backend(v); }},
      {{"--launcher_args"}, true, [](O& o, V v) { o.launcher_args = v; }},
      {{"--ssh_port"}, true, [](O& o, V v) { o.ssh_port = parse_int("--ssh_port", v, 1, 65535); }},
      {{"--venv_script"}, true, [](O& o, V v) { o.venv_script = v; }},
      {{"--no_ssh"}, false, [](O& o, V) { o.no_ssh = true; }},
      {{"--no_local_rank"}, false, [](O& o, V) { o.no_local_rank = true; }},
      {{"--no_ssh_check"}, false, [](O& o, V) { o.no_ssh_check = true; }},
      {{"--force_multi"}, false, [](O& o, V) { o.force_multi = true; }},
      {{"--save_pid"}, false, [](O& o, V) { o.save_pid = true; }},
      // Programs are executables, so DeepSpeed's --no_python behaviour is the only behaviour.
      {{"--no_python"}, false, [](O&, V) {}},
      {{"--enable_each_rank_log"}, true,
       [](O& o, V v) {
         if (v.empty()) throw UsageError("--enable_each_rank_log: expected a directory, got ''");
         // DeepSpeed's default value is the string "None"; scripts pass it explicitly to mean "off".
         if (v == "None") o.rank_log_dir.reset(); else o.rank_log_dir = v;
       }},
      {{"--bind_cores_to_rank"}, false, [](O& o, V) { o.bind_cores_to_rank = true; }},
      {{"--bind_core_list"}, true, [](O& o, V v) { o.bind_core_list = v; }},
      {{"--log_level"}, true,
       [](O& o, V v) {
         static const std::vector<std::string> levels = {"debug", "info", "warning", "error", "critical"};
         if (std::find(levels.begin(), levels.end(), v) == levels.end()) {
           throw UsageError(cat("--log_level: expected one of debug, info, warning, error, critical, got '", v, "'"));
         }
         o.log_level = v;
       }},
      {{"--quiet", "-q"}, false, [](O& o, V) { o.log_level = "error"; }},
      {{"--help", "-h"}, false, [](O& o, V) { o.help = true; }},
      {{"--world_info"}, true, [](O& o, V v) { o.world_info = v; }},
      {{"--node_host"}, true, [](O& o, V v) { o.node_host = v; }},
      {{"--stdin_watchdog"}, false, [](O& o, V) { o.stdin_watchdog = true; }},
      {{"--module"}, false,
       [](O&, V) {
         unsupported("--module", "deepspeed.cpp launches compiled executables, not Python modules; "
                                 "pass the program's path instead");
       }},
      {{"--autotuning"}, true, [](O&, V) { unsupported("--autotuning", "there is no autotuner"); }},
      {{"--elastic_training"}, false, [](O&, V) { unsupported("--elastic_training", "there is no elastic agent"); }},
      {{"--min_elastic_nodes"}, true, [](O&, V) { unsupported("--min_elastic_nodes", "there is no elastic agent"); }},
      {{"--max_elastic_nodes"}, true, [](O&, V) { unsupported("--max_elastic_nodes", "there is no elastic agent"); }},
  };
}

/// Exact spelling first; otherwise a long flag may be abbreviated to any unambiguous prefix (argparse's
/// allow_abbrev), counting aliases of one flag as one match.
const FlagSpec& find_flag(const std::vector<FlagSpec>& table, const std::string& name) {
  for (const auto& spec : table) {
    if (std::find(spec.names.begin(), spec.names.end(), name) != spec.names.end()) return spec;
  }
  std::vector<const FlagSpec*> matches;
  std::vector<std::string> all_long;
  for (const auto& spec : table) {
    bool matched = false;
    for (const auto& spelling : spec.names) {
      if (spelling.rfind("--", 0) != 0) continue;
      all_long.push_back(spelling);
      if (!matched && name.size() > 2 && name.rfind("--", 0) == 0 && spelling.rfind(name, 0) == 0) {
        matches.push_back(&spec);
        matched = true;
      }
    }
  }
  if (matches.size() == 1) return *matches.front();
  if (matches.size() > 1) {
    std::string names;
    for (const auto* m : matches) names += (names.empty() ? "" : ", ") + m->names.front();
    throw UsageError(cat("ambiguous option '", name, "' could match ", names));
  }
  const std::string suggestion = util::closest_match(name, all_long);
  throw UsageError(cat("unrecognized option '", name, "'",
                       suggestion.empty() ? std::string() : cat(" (did you mean ", suggestion, "?)"),
                       "; launcher flags go before the program"));
}

void validate(const LaunchOptions& o) {
  if (o.help) return;
  if (o.program.empty()) {
    throw UsageError("missing the user program: usage: deepspeed [launcher flags] program [program args...]");
  }
  if (!o.include.empty() && !o.exclude.empty()) {
    throw UsageError("--include and --exclude are mutually exclusive");
  }
  if ((o.num_nodes >= 0 || o.num_gpus >= 0) && (!o.include.empty() || !o.exclude.empty())) {
    throw UsageError(cat(o.num_nodes >= 0 ? "--num_nodes" : "--num_gpus", " cannot be combined with ",
                         o.include.empty() ? "--exclude" : "--include",
                         " (pick the hosts/slots with one or the other)"));
  }
  if (!o.world_info.empty() && !o.no_ssh) {
    throw UsageError("--world_info is internal to the per-node agent and needs --no_ssh");
  }
}

}  // namespace

const char* backend_name(Backend backend) {
  switch (backend) {
    case Backend::kSsh: return "ssh";
    case Backend::kPdsh: return "pdsh";
    case Backend::kOpenMpi: return "openmpi";
    case Backend::kSlurm: return "slurm";
  }
  return "ssh";
}

LaunchOptions parse_launcher_args(const std::vector<std::string>& args) {
  static const std::vector<FlagSpec> table = flag_table();
  LaunchOptions options;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    const bool is_flag = arg.size() > 1 && arg[0] == '-' && arg != "--";
    if (!is_flag) {
      // "--" ends the launcher flags explicitly; otherwise the first plain word is the program.
      const std::size_t first = arg == "--" ? i + 1 : i;
      if (first < args.size()) {
        options.program = args[first];
        options.program_args.assign(args.begin() + static_cast<std::ptrdiff_t>(first) + 1, args.end());
      }
      break;
    }
    std::string name = arg;
    std::optional<std::string> attached;
    if (arg.rfind("--", 0) == 0) {
      const auto eq = arg.find('=');
      if (eq != std::string::npos) {
        name = arg.substr(0, eq);
        attached = arg.substr(eq + 1);
      }
    } else if (arg.size() > 2) {
      name = arg.substr(0, 2);
      attached = arg.substr(2);
    }
    const FlagSpec& spec = find_flag(table, name);
    const std::string& canonical = spec.names.front();
    std::string value;
    if (spec.takes_value) {
      if (attached) {
        value = *attached;
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        throw UsageError(cat(canonical, ": expected a value"));
      }
    } else if (attached) {
      throw UsageError(cat(canonical, " takes no value, got '", arg, "'"));
    }
    spec.apply(options, value);
  }
  validate(options);
  return options;
}

std::string launcher_usage() {
  return R"(usage: deepspeed [launcher flags] program [program args...]

Starts `program` once per rank (GPU, or CPU rank in CPU mode) on this node or on every node of a
hostfile, with RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_SIZE, CROSS_RANK, CROSS_SIZE, MASTER_ADDR and
MASTER_PORT set, and `--local_rank=<LOCAL_RANK>` prepended to the program's arguments.

resources:
  -H, --hostfile PATH        MPI-style hostfile, lines 'HOST slots=N' (default /job/hostfile)
  -i, --include SPEC         use only these: NAME[:SLOT[,SLOT...]][@NAME...], e.g. worker-0@worker-1:0,2
  -e, --exclude SPEC         use everything but these (same syntax)
  --num_nodes N              use the first N hosts
  --num_gpus, --num_accelerators N
                             use slots [0, N) on every host (CPU mode: N CPU ranks, default 1)
rendezvous:
  --master_addr ADDR         address of rank 0 (default 127.0.0.1 on one node, the first host otherwise)
  --master_port PORT         default 29500
process:
  --no_local_rank            do not pass --local_rank=N to the program
  --enable_each_rank_log DIR write each rank's stdout+stderr to DIR/<YYYYmmddHHMMSS>_rank<R>.log
  --bind_cores_to_rank       give each rank its own slice of CPU cores (sets OMP_NUM_THREADS)
  --bind_core_list LIST      cores to slice, e.g. 1,3-5,7 (default: the cores this launcher may use)
  --save_pid                 write /tmp/<launcher pid>.deepspeed while running
  --no_python                accepted for compatibility (programs are always executed directly)
multi-node:
  --launcher ssh|pdsh|openmpi|slurm   default ssh
  --launcher_args ARGS       extra arguments for ssh/pdsh/mpirun/srun (shell-quoted string)
  --ssh_port PORT            port for ssh/pdsh
  --no_ssh                   launch only this node's ranks (needs --node_rank when several nodes)
  --node_rank N              this node's index in the hostfile order (with --no_ssh)
  --no_ssh_check             skip the 'ssh -o BatchMode=yes HOST true' reachability check
  --force_multi              use the multi-node launcher even for one node
  --venv_script PATH         shell script sourced on every node before launching
logging:
  --log_level LEVEL          debug|info|warning|error|critical (default info); -q, --quiet = error
  -h, --help                 this text

environment: DS_ACCELERATOR=cpu forces CPU mode; DS_KILL_GRACE_SECONDS (default 30) is the time ranks get
between SIGTERM and SIGKILL; DS_ENV_FILE names the .deepspeed_env file exported to remote nodes.
)";
}

}  // namespace deepspeed::launcher
