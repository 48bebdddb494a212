#include "launch.h"

#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "accelerator.h"
#include "cores.h"
#include "deepspeed/util/error.h"
#include "deepspeed/util/logging.h"
#include "deepspeed/util/strings.h"
#include "process.h"
#include "supervisor.h"
#include "world.h"

namespace deepspeed::launcher {
namespace {

using util::cat;
namespace fs = std::filesystem;

/// Path of the --save_pid file for the early signal handler (which may only use async-signal-safe calls).
char g_pid_file_path[64] = "";

/// Until the supervisor takes signals over, a stop request ends the launcher at once (nothing to stop yet)
/// but still removes the pid file.
void on_early_signal(int sig) {
  if (g_pid_file_path[0] != '\0') ::unlink(g_pid_file_path);
  ::_exit(128 + sig);
}

/// --save_pid: /tmp/<pid>.deepspeed exists exactly while the launcher runs.
class PidFile {
 public:
  explicit PidFile(bool enabled) {
    if (!enabled) return;
    path_ = cat("/tmp/", ::getpid(), ".deepspeed");
    std::snprintf(g_pid_file_path, sizeof g_pid_file_path, "%s", path_.c_str());
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::signal(sig, on_early_signal);
    std::ofstream out(path_, std::ios::trunc);
    out << ::getpid();
    if (!out) throw UsageError(cat("--save_pid: cannot write ", path_));
    std::cout << "launcher pid: " << ::getpid() << std::endl;
  }
  ~PidFile() {
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  PidFile(const PidFile&) = delete;
  PidFile& operator=(const PidFile&) = delete;

 private:
  std::string path_;
};

std::optional<std::string> read_hostfile(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::nullopt;
  if (!fs::is_regular_file(path, ec)) throw UsageError(cat("-H/--hostfile ", path, ": not a regular file"));
  std::ifstream in(path);
  if (!in) throw UsageError(cat("-H/--hostfile ", path, ": cannot read: ", std::strerror(errno)));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

/// The node index an agent or --no_ssh launch runs.
int choose_node_rank(const LaunchOptions& options, const WorldInfo& world) {
  if (!options.node_host.empty()) {
    for (std::size_t i = 0; i < world.size(); ++i) {
      if (world[i].host == options.node_host) return static_cast<int>(i);
    }
    throw UsageError(cat("--node_host ", options.node_host, ": not a host of the job"));
  }
  if (options.node_rank >= 0) {
    if (static_cast<std::size_t>(options.node_rank) >= world.size()) {
      throw UsageError(cat("--node_rank ", options.node_rank, ": expected a node index in [0, ", world.size(), ")"));
    }
    return options.node_rank;
  }
  if (world.size() == 1) return 0;
  throw UsageError(cat("--no_ssh with ", world.size(), " nodes needs --node_rank in [0, ", world.size(), ")"));
}

std::vector<int> allowed_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cores;
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return cores;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &set)) cores.push_back(c);
  }
  return cores;
}

/// Creates DIR for --enable_each_rank_log and returns the per-launch file name prefix DIR/<YYYYmmddHHMMSS>.
std::string prepare_rank_log_dir(const std::string& dir) {
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec)) {
    throw UsageError(cat("--enable_each_rank_log ", dir, ": is a file, expected a directory"));
  }
  fs::create_directories(dir, ec);
  if (ec) throw UsageError(cat("--enable_each_rank_log ", dir, ": cannot create directory: ", ec.message()));
  char stamp[32];
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  ::localtime_r(&now, &local);
  std::strftime(stamp, sizeof stamp, "%Y%m%d%H%M%S", &local);
  return (fs::path(dir) / stamp).string();
}

std::string world_to_string(const WorldInfo& world) {
  std::string text = "{";
  for (const auto& node : world) {
    text += cat(text.size() > 1 ? ", " : "", "'", node.host, "': [");
    for (std::size_t i = 0; i < node.slots.size(); ++i) text += cat(i ? ", " : "", node.slots[i]);
    text += "]";
  }
  return text + "}";
}

void set_log_level(const std::string& level) {
  using log::Level;
  if (level.empty()) return;  // keep ds_util's default (DEEPSPEED_LOG_LEVEL, else info)
  if (level == "debug") log::set_level(Level::kDebug);
  else if (level == "warning") log::set_level(Level::kWarning);
  else if (level == "error" || level == "critical") log::set_level(Level::kError);
  else log::set_level(Level::kInfo);
}

}  // namespace

int run_node(const LaunchOptions& options, const WorldInfo& world, int node_rank, const std::string& master_addr,
             const LaunchContext& context) {
  const AcceleratorChoice accel = detect_accelerator();
  const NodeSlots& node = world.at(static_cast<std::size_t>(node_rank));
  if (!accel.cpu_mode) {
    for (int slot : node.slots) {
      if (slot >= accel.gpu_count) {
        throw UsageError(cat("node ", node_rank, " (", node.host, ") is given GPU ", slot, " but only ", accel.gpu_count,
                             " CUDA devices are visible here (hostfile slots or --include too large)"));
      }
    }
  }
  if (!find_program(options.program, std::getenv("PATH"))) {
    throw UsageError(cat("program '", options.program, "': ",
                         options.program.find('/') == std::string::npos ? "not found on PATH"
                                                                        : "no such executable file"));
  }
  DS_LOG(kInfo, "WORLD INFO DICT: ", world_to_string(world));
  DS_LOG(kInfo, "nnodes=", world.size(), ", num_local_procs=", node.slots.size(), ", node_rank=", node_rank, ", mode=",
         accel.cpu_mode ? "cpu" : "cuda", " (", accel.why, ")");

  const auto parent_env = current_environment();
  const EnvVars defaults = default_rank_env(parent_env);
  const auto ranks = plan_node_ranks(world, node_rank, master_addr, options.master_port, !accel.cpu_mode);
  const std::string log_prefix = options.rank_log_dir ? prepare_rank_log_dir(*options.rank_log_dir) : "";
  std::vector<int> cores;
  if (options.bind_cores_to_rank) {
    cores = options.bind_core_list ? parse_core_list(*options.bind_core_list) : allowed_cores();
  } else if (options.bind_core_list) {
    DS_LOG(kWarning, "--bind_core_list is ignored without --bind_cores_to_rank");
  }

  // Several ranks each running a full-width OpenMP pool oversubscribe the cores (a 2-rank CPU job ran 6x
  // slower); like torchrun, and unlike DeepSpeed's launcher, split the cores unless the user chose.
  std::string omp_threads;
  if (!options.bind_cores_to_rank && find_env(parent_env, "OMP_NUM_THREADS") == nullptr && !ranks.empty()) {
    omp_threads = std::to_string(std::max<std::size_t>(1, allowed_cores().size() / ranks.size()));
    DS_LOG(kInfo, "Setting OMP_NUM_THREADS=", omp_threads, " for each rank (cores / local ranks); set "
                  "OMP_NUM_THREADS to override");
  }

  std::vector<ChildSpec> children;
  for (const auto& rank : ranks) {
    ChildSpec child;
    child.label = cat("rank ", rank.rank);
    child.argv = rank_argv(options.program, options.program_args, rank.local_rank, options.no_local_rank);
    EnvVars vars = defaults;
    vars.insert(vars.end(), rank.env.begin(), rank.env.end());
    if (options.bind_cores_to_rank) {
      child.cpu_affinity = cores_for_rank(cores, static_cast<int>(ranks.size()), rank.local_rank);
      vars.emplace_back("OMP_NUM_THREADS", std::to_string(child.cpu_affinity.size()));
    } else if (!omp_threads.empty()) {
      vars.emplace_back("OMP_NUM_THREADS", omp_threads);
    }
    child.env = merge_environment(parent_env, vars);
    if (!log_prefix.empty()) child.log_path = cat(log_prefix, "_rank", rank.rank, ".log");
    children.push_back(std::move(child));
  }
  SupervisorOptions supervision;
  supervision.grace_seconds = context.grace_seconds;
  supervision.stdin_watchdog = options.stdin_watchdog;
  return run_supervised(children, supervision);
}

int launch(const LaunchOptions& options) {
  set_log_level(options.log_level);
  LaunchContext context;
  context.hostfile = options.hostfile;
  context.grace_seconds = grace_seconds_from_env(std::getenv("DS_KILL_GRACE_SECONDS"));
  const PidFile pid_file(options.save_pid);

  if (!options.world_info.empty()) {
    // Per-node agent of a multi-node job: the world was decided on the launching node.
    const WorldInfo world = decode_world_info(options.world_info);
    const int node_rank = choose_node_rank(options, world);
    return run_node(options, world, node_rank, options.master_addr.empty() ? world.front().host : options.master_addr,
                    context);
  }

  const auto hostfile_text = read_hostfile(options.hostfile);
  context.hostfile_found = hostfile_text.has_value();
  if (!hostfile_text) {
    DS_LOG(kWarning, "Unable to find hostfile, will proceed with training with local resources only. (no file at ",
           options.hostfile, ")");
  }
  const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
  const auto rule = visible_devices_rule(visible != nullptr ? visible : "", context.hostfile_found, options);
  if (!rule.message.empty()) std::cout << rule.message << std::endl;
  const std::string include = rule.include.empty() ? options.include : rule.include;
  const std::string_view include_flag = rule.include.empty() ? "--include" : "--include (from CUDA_VISIBLE_DEVICES)";

  ResourcePool pool;
  if (hostfile_text) {
    pool = parse_hostfile(*hostfile_text, options.hostfile);
  } else {
    if (options.num_nodes > 1) {
      throw UsageError(cat("--num_nodes ", options.num_nodes, " but there is no hostfile (", options.hostfile,
                           " not found), so only this node is available"));
    }
    // Only the slot count is needed here; run_node() decides the mode again for the ranks it starts.
    const AcceleratorChoice accel = detect_accelerator();
    pool = local_pool(accel.cpu_mode, accel.gpu_count, options.num_gpus, include);
  }
  WorldInfo world = resolve_resources(pool, include, options.exclude, include_flag);
  world = limit_resources(std::move(world), options.num_nodes, options.num_gpus, pool);

  if ((options.force_multi || world.size() > 1) && !options.no_ssh) return launch_multinode(options, world, context);
  if (!options.no_ssh && options.node_rank >= 0) DS_LOG(kWarning, "--node_rank is ignored without --no_ssh");
  const int node_rank = options.no_ssh ? choose_node_rank(options, world) : 0;
  std::string master_addr = options.master_addr;
  if (master_addr.empty()) master_addr = world.size() == 1 ? "127.0.0.1" : world.front().host;
  return run_node(options, world, node_rank, master_addr, context);
}

}  // namespace deepspeed::launcher
