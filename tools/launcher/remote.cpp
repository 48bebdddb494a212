#include "remote.h"

#include "deepspeed/util/error.h"
#include "deepspeed/util/strings.h"
#include "shell.h"

namespace deepspeed::launcher {
namespace {

using util::cat;

bool is_identifier(std::string_view key) {
  if (key.empty() || (key[0] >= '0' && key[0] <= '9')) return false;
  for (char c : key) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) return false;
  }
  return true;
}

std::string_view strip(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

int total_slots(const WorldInfo& world) {
  int total = 0;
  for (const auto& node : world) total += static_cast<int>(node.slots.size());
  return total;
}

std::string host_list(const WorldInfo& world) {
  std::string hosts;
  for (const auto& node : world) hosts += (hosts.empty() ? "" : ",") + node.host;
  return hosts;
}

std::vector<std::string> pdsh_prefix(const WorldInfo& world, const std::vector<std::string>& extra_args) {
  std::vector<std::string> argv{"pdsh", "-S", "-f", "1024", "-w", host_list(world)};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  return argv;
}

}  // namespace

EnvVars select_exports(const std::vector<std::string>& environ) {
  // DeepSpeed's prefixes, plus what our ranks read: every rank of a job must see the same DS_* switches
  // (a reducer choice that differs between nodes would deadlock) and the same Gloo/OpenMP settings.
  static const std::vector<std::string> prefixes = {"NCCL", "PYTHON", "MLFLOW", "MV2", "UCX", "DEEPSPEED_", "DS_",
                                                    "GLOO_", "TORCH_"};
  static const std::vector<std::string> exact = {"OMP_NUM_THREADS"};
  const bool aisc = find_env(environ, "AISC_JOB_NAME") != nullptr;
  EnvVars exports;
  for (const auto& entry : environ) {
    const auto eq = entry.find('=');
    if (eq == std::string::npos) continue;
    const std::string key = entry.substr(0, eq);
    if (!is_identifier(key)) continue;
    bool wanted = false;
    for (const auto& p : prefixes) wanted = wanted || key.rfind(p, 0) == 0;
    for (const auto& e : exact) wanted = wanted || key == e;
    if (aisc && (key == "NCCL_IB_HCA" || key == "UCX_NET_DEVICES")) wanted = false;
    if (wanted) exports.emplace_back(key, entry.substr(eq + 1));
  }
  return exports;
}

EnvVars parse_env_file(std::string_view text, const std::string& path) {
  EnvVars vars;
  int line_number = 0;
  for (const auto& raw : util::split(text, '\n')) {
    ++line_number;
    const std::string_view line = strip(raw);
    if (line.empty() || line.front() == '#') continue;
    const auto eq = line.find('=');
    const std::string_view key = eq == std::string_view::npos ? line : strip(line.substr(0, eq));
    if (eq == std::string_view::npos || !is_identifier(key)) {
      throw UsageError(cat(path, " line ", line_number, ": expected KEY=VALUE with KEY a variable name, got '", line, "'"));
    }
    vars.emplace_back(std::string(key), std::string(strip(line.substr(eq + 1))));
  }
  return vars;
}

std::vector<std::string> env_file_candidates(const char* ds_env_file, const char* home) {
  const std::string name = ds_env_file != nullptr && *ds_env_file != '\0' ? ds_env_file : ".deepspeed_env";
  if (name.front() == '/') return {name};
  std::vector<std::string> paths;
  if (home != nullptr && *home != '\0') paths.push_back(cat(home, "/", name));
  paths.push_back(name);
  return paths;
}

std::string agent_shell_command(const AgentCommand& command, const std::string& node_arg) {
  std::string line = "cd " + shell_quote(command.cwd) + " || exit 1; ";
  for (const auto& [key, value] : command.exports) {
    if (is_identifier(key)) line += "export " + key + "=" + shell_quote(value) + "; ";
  }
  if (!command.venv_script.empty()) line += ". " + shell_quote(command.venv_script) + "; ";
  std::vector<std::string> words{command.agent_path,
                                 "--no_ssh",
                                 node_arg,
                                 "--world_info=" + command.world_info,
                                 "--master_addr=" + command.master_addr,
                                 cat("--master_port=", command.master_port)};
  words.insert(words.end(), command.agent_flags.begin(), command.agent_flags.end());
  // "--" keeps a program name from ever being read as an agent flag.
  words.push_back("--");
  words.push_back(command.program);
  words.insert(words.end(), command.program_args.begin(), command.program_args.end());
  return line + "exec " + shell_join(words);
}

std::vector<std::string> ssh_argv(const std::string& host, std::optional<int> port,
                                  const std::vector<std::string>& extra_args, const std::string& remote_command) {
  std::vector<std::string> argv{"ssh", "-o", "BatchMode=yes"};
  if (port) {
    argv.push_back("-p");
    argv.push_back(std::to_string(*port));
  }
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  argv.push_back(host);
  argv.push_back(remote_command);
  return argv;
}

std::vector<std::string> ssh_check_argv(const std::string& host, std::optional<int> port,
                                        const std::vector<std::string>& extra_args) {
  std::vector<std::string> argv{"ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"};
  if (port) {
    argv.push_back("-p");
    argv.push_back(std::to_string(*port));
  }
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  argv.push_back(host);
  argv.push_back("true");
  return argv;
}

std::vector<std::string> pdsh_argv(const WorldInfo& world, const std::vector<std::string>& extra_args,
                                   const AgentCommand& command) {
  // Built around a placeholder so that doubling every user '%' leaves exactly one pdsh substitution.
  static const std::string kPlaceholder = "DS_PDSH_NODE_HOST_PLACEHOLDER";
  const std::string raw = agent_shell_command(command, "--node_host=" + kPlaceholder);
  std::string escaped;
  for (char c : raw) escaped += c == '%' ? std::string("%%") : std::string(1, c);
  escaped.replace(escaped.find(kPlaceholder), kPlaceholder.size(), "%h");
  auto argv = pdsh_prefix(world, extra_args);
  argv.push_back(escaped);
  return argv;
}

std::vector<std::string> pdsh_kill_argv(const WorldInfo& world, const std::vector<std::string>& extra_args,
                                        const AgentCommand& command) {
  const std::string pattern =
      cat("--world_info=", command.world_info, " --master_addr=[^ ]* --master_port=", command.master_port, "( |$)");
  auto argv = pdsh_prefix(world, extra_args);
  argv.push_back("pkill -TERM -f -- " + shell_quote(pattern));
  return argv;
}

std::vector<std::string> mpirun_argv(const WorldInfo& world, const std::string& hostfile,
                                     const std::vector<std::string>& extra_args, const EnvVars& exports,
                                     const std::string& master_addr, int master_port, const std::string& program,
                                     const std::vector<std::string>& program_args) {
  std::vector<std::string> argv{"mpirun", "-n", std::to_string(total_slots(world)), "-hostfile", hostfile,
                                "--mca",  "btl", "^openib"};
  bool interface_given = false;
  for (std::size_t i = 0; i + 1 < extra_args.size(); ++i) {
    interface_given = interface_given ||
                      ((extra_args[i] == "-mca" || extra_args[i] == "--mca") && extra_args[i + 1] == "btl_tcp_if_include");
  }
  if (!interface_given) argv.insert(argv.end(), {"--mca", "btl_tcp_if_include", "eth0"});
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  for (const auto& [key, value] : exports) argv.insert(argv.end(), {"-x", key + "=" + value});
  argv.insert(argv.end(), {"-x", "MASTER_ADDR=" + master_addr, "-x", cat("MASTER_PORT=", master_port)});
  argv.push_back(program);
  argv.insert(argv.end(), program_args.begin(), program_args.end());
  return argv;
}

std::vector<std::string> srun_argv(const WorldInfo& world, int num_nodes, const std::vector<std::string>& extra_args,
                                   const std::string& program, const std::vector<std::string>& program_args) {
  std::vector<std::string> argv{"srun", "-n", std::to_string(total_slots(world))};
  if (num_nodes > 0) argv.insert(argv.end(), {"--nodes", std::to_string(num_nodes)});
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  argv.push_back("--export=ALL");
  argv.push_back(program);
  argv.insert(argv.end(), program_args.begin(), program_args.end());
  return argv;
}

}  // namespace deepspeed::launcher
