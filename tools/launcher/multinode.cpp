#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include "deepspeed/util/error.h"
#include "deepspeed/util/logging.h"
#include "deepspeed/util/strings.h"
#include "launch.h"
#include "process.h"
#include "remote.h"
#include "shell.h"
#include "supervisor.h"

namespace deepspeed::launcher {
namespace {

using util::cat;

std::string self_path() {
  char buffer[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", buffer, sizeof buffer - 1);
  if (n <= 0) throw JobError("cannot resolve /proc/self/exe (the agent path for remote nodes)");
  return std::string(buffer, static_cast<std::size_t>(n));
}

std::string current_dir() {
  char buffer[PATH_MAX];
  if (::getcwd(buffer, sizeof buffer) == nullptr) throw JobError("cannot determine the current directory");
  return buffer;
}

/// The variables remote nodes get: selected launcher variables, then .deepspeed_env files (later wins).
EnvVars remote_exports(const std::vector<std::string>& environ) {
  EnvVars exports = select_exports(environ);
  for (const auto& path : env_file_candidates(std::getenv("DS_ENV_FILE"), std::getenv("HOME"))) {
    std::ifstream in(path);
    if (!in) continue;
    std::stringstream text;
    text << in.rdbuf();
    DS_LOG(kInfo, "deepspeed_env file = ", path);
    for (auto& [key, value] : parse_env_file(text.str(), path)) {
      bool replaced = false;
      for (auto& existing : exports) {
        if (existing.first == key) {
          existing.second = value;
          replaced = true;
        }
      }
      if (!replaced) exports.emplace_back(key, value);
    }
  }
  return exports;
}

void require_tool(const std::string& tool, const LaunchOptions& options) {
  if (!find_program(tool, std::getenv("PATH"))) {
    throw UsageError(cat("--launcher ", backend_name(options.backend), ": '", tool, "' not found on PATH"));
  }
}

/// DeepSpeed checks the first host only; a job needs every host, so all are checked (in parallel).
void check_ssh_reachable(const WorldInfo& world, const LaunchOptions& options, const LaunchContext& context,
                         const std::vector<std::string>& extra_args) {
  std::vector<std::vector<std::string>> checks;
  for (const auto& node : world) checks.push_back(ssh_check_argv(node.host, options.ssh_port, extra_args));
  const auto codes = run_quietly(checks, 20);
  for (std::size_t i = 0; i < world.size(); ++i) {
    if (codes[i] == 0) continue;
    const std::string hostfile = context.hostfile_found ? context.hostfile : "(no hostfile: --force_multi)";
    throw UsageError(cat("Using hostfile at ", hostfile, " but host=", world[i].host,
                         " was not reachable via ssh (", shell_join(checks[i]), " ",
                         codes[i] < 0 ? "timed out" : cat("exited with ", codes[i]),
                         "); set up passwordless ssh, fix the hostfile, or pass --no_ssh_check"));
  }
}

void reject_resource_filters(const LaunchOptions& options, bool allow_num_nodes) {
  if (!options.include.empty() || !options.exclude.empty() || options.num_gpus > 0 ||
      (!allow_num_nodes && options.num_nodes > 0)) {
    throw UsageError(cat("--launcher ", backend_name(options.backend), " runs every slot of the hostfile and does not support ",
                         allow_num_nodes ? "--include/--exclude/--num_gpus" : "--include/--exclude/--num_nodes/--num_gpus"));
  }
}

AgentCommand make_agent_command(const LaunchOptions& options, const WorldInfo& world, const std::string& master_addr,
                                const EnvVars& exports) {
  AgentCommand command;
  command.cwd = current_dir();
  command.exports = exports;
  command.venv_script = options.venv_script;
  command.agent_path = self_path();
  command.world_info = encode_world_info(world);
  command.master_addr = master_addr;
  command.master_port = options.master_port;
  if (options.no_local_rank) command.agent_flags.push_back("--no_local_rank");
  if (options.rank_log_dir) command.agent_flags.push_back("--enable_each_rank_log=" + *options.rank_log_dir);
  if (options.bind_cores_to_rank) command.agent_flags.push_back("--bind_cores_to_rank");
  if (options.bind_core_list) command.agent_flags.push_back("--bind_core_list=" + *options.bind_core_list);
  if (!options.log_level.empty()) command.agent_flags.push_back("--log_level=" + options.log_level);
  command.program = options.program;
  command.program_args = options.program_args;
  return command;
}

}  // namespace

int launch_multinode(const LaunchOptions& options, const WorldInfo& world, const LaunchContext& context) {
  const auto environ = current_environment();
  const EnvVars exports = remote_exports(environ);
  const auto extra_args = split_shell_words(options.launcher_args, "--launcher_args");
  std::string master_addr = options.master_addr;
  if (master_addr.empty()) {
    // DeepSpeed asks the first host for `hostname -I`; its name is what every node can resolve as well.
    master_addr = world.front().host;
    DS_LOG(kInfo, "Using first host ", master_addr, " as the master address (pass --master_addr to override)");
    if (master_addr == "localhost" && world.size() > 1) {
      DS_LOG(kWarning, "master address 'localhost' will not reach rank 0 from other nodes; pass --master_addr");
    }
  }

  std::vector<ChildSpec> children;
  SupervisorOptions supervision;
  supervision.grace_seconds = context.grace_seconds;
  AgentCommand agent = make_agent_command(options, world, master_addr, exports);
  switch (options.backend) {
    case Backend::kSsh: {
      require_tool("ssh", options);
      if (!options.no_ssh_check) check_ssh_reachable(world, options, context, extra_args);
      agent.agent_flags.push_back("--stdin_watchdog");
      for (std::size_t i = 0; i < world.size(); ++i) {
        ChildSpec child;
        child.label = cat("node ", i, " (", world[i].host, ")");
        child.argv = ssh_argv(world[i].host, options.ssh_port, extra_args, agent_shell_command(agent, cat("--node_rank=", i)));
        child.env = environ;
        child.terminate_by_stdin_eof = true;
        children.push_back(std::move(child));
      }
      break;
    }
    case Backend::kPdsh: {
      require_tool("pdsh", options);
      if (!options.no_ssh_check) check_ssh_reachable(world, options, context, {});
      EnvVars pdsh_env{{"PDSH_RCMD_TYPE", "ssh"}};
      if (options.ssh_port) {
        const char* append = std::getenv("PDSH_SSH_ARGS_APPEND");
        pdsh_env.emplace_back("PDSH_SSH_ARGS_APPEND", cat(append ? append : "", " -p ", *options.ssh_port));
      }
      ChildSpec child;
      child.label = "pdsh";
      child.argv = pdsh_argv(world, extra_args, agent);
      child.env = merge_environment(environ, pdsh_env);
      supervision.abort_command = pdsh_kill_argv(world, extra_args, agent);
      children.push_back(std::move(child));
      break;
    }
    case Backend::kOpenMpi: {
      require_tool("mpirun", options);
      reject_resource_filters(options, false);
      if (!context.hostfile_found) throw UsageError("--launcher openmpi needs a hostfile (-H/--hostfile)");
      ChildSpec child;
      child.label = "mpirun";
      child.argv = mpirun_argv(world, context.hostfile, extra_args, exports, master_addr, options.master_port,
                               options.program, options.program_args);
      child.env = environ;
      children.push_back(std::move(child));
      break;
    }
    case Backend::kSlurm: {
      require_tool("srun", options);
      reject_resource_filters(options, true);
      EnvVars vars = exports;
      vars.emplace_back("MASTER_ADDR", master_addr);
      vars.emplace_back("MASTER_PORT", std::to_string(options.master_port));
      ChildSpec child;
      child.label = "srun";
      child.argv = srun_argv(world, options.num_nodes, extra_args, options.program, options.program_args);
      child.env = merge_environment(environ, vars);
      children.push_back(std::move(child));
      break;
    }
  }
  for (const auto& child : children) DS_LOG(kInfo, "cmd = ", shell_join(child.argv));
  return run_supervised(children, supervision);
}

}  // namespace deepspeed::launcher
