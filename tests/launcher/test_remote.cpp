// Unit tests: multi-node exports and command building (tools/launcher/remote.h). The agent command line is
// run through a real bash with a stand-in agent that prints its arguments.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

#include "deepspeed/util/error.h"
#include "tools/launcher/remote.h"
#include "tools/launcher/shell.h"

namespace deepspeed::launcher {
namespace {

std::string run_bash(const std::string& script) {
  const std::string command = "/bin/bash -c " + shell_quote(script);
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
  std::string out;
  char buffer[256];
  std::size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe.get())) > 0) out.append(buffer, n);
  return out;
}

AgentCommand sample_command(const std::string& agent_path, const std::string& cwd) {
  AgentCommand c;
  c.cwd = cwd;
  c.exports = {{"NCCL_DEBUG", "INFO"}, {"HOSTILE", "x'; touch /tmp/ds_pwned; echo '$(id)"}};
  c.agent_path = agent_path;
  c.world_info = "eyJhIjogWzBdfQ==";
  c.master_addr = "node-0";
  c.master_port = 29511;
  c.agent_flags = {"--no_local_rank"};
  c.program = "./my train";
  c.program_args = {"--lr", "1e-3", "a b", "it's", "$(echo no)", "100%"};
  return c;
}

TEST(LauncherExports, SelectsDeepSpeedPrefixesAndHonoursAisc) {
  const std::vector<std::string> env{"NCCL_DEBUG=INFO", "PATH=/bin", "PYTHONPATH=/p", "UCX_TLS=tcp", "HOME=/h",
                                     "DEEPSPEED_LOG_LEVEL=debug", "DS_ACCELERATOR=cpu", "NCCL_IB_HCA=mlx5",
                                     "MY_NCCL=x", "DS_OTHER=1", "OMP_NUM_THREADS=4", "GLOO_SOCKET_IFNAME=eth0"};
  // Ranks on every node must see the same DS_* switches and Gloo/OpenMP settings as the local ones.
  EXPECT_EQ(select_exports(env), (EnvVars{{"NCCL_DEBUG", "INFO"}, {"PYTHONPATH", "/p"}, {"UCX_TLS", "tcp"},
                                          {"DEEPSPEED_LOG_LEVEL", "debug"}, {"DS_ACCELERATOR", "cpu"},
                                          {"NCCL_IB_HCA", "mlx5"}, {"DS_OTHER", "1"}, {"OMP_NUM_THREADS", "4"},
                                          {"GLOO_SOCKET_IFNAME", "eth0"}}));
  auto aisc = env;
  aisc.push_back("AISC_JOB_NAME=j");
  const auto exports = select_exports(aisc);
  for (const auto& [k, v] : exports) EXPECT_NE(k, "NCCL_IB_HCA");
}

TEST(LauncherExports, EnvFileParsing) {
  EXPECT_EQ(parse_env_file("# c\n\nA=1\n B = two words \nC=x=y\r\n", "f"),
            (EnvVars{{"A", "1"}, {"B", "two words"}, {"C", "x=y"}}));
  try {
    parse_env_file("A=1\nno equals here\n", "/home/u/.deepspeed_env");
    ADD_FAILURE();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("/home/u/.deepspeed_env line 2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_env_file("1X=1\n", "f"), UsageError);
}

TEST(LauncherExports, EnvFileCandidates) {
  EXPECT_EQ(env_file_candidates(nullptr, "/home/u"), (std::vector<std::string>{"/home/u/.deepspeed_env", ".deepspeed_env"}));
  EXPECT_EQ(env_file_candidates("my_env", "/h"), (std::vector<std::string>{"/h/my_env", "my_env"}));
  EXPECT_EQ(env_file_candidates("/etc/ds_env", "/h"), (std::vector<std::string>{"/etc/ds_env"}));
  EXPECT_EQ(env_file_candidates(nullptr, nullptr), (std::vector<std::string>{".deepspeed_env"}));
}

TEST(LauncherAgentCommand, EveryWordArrivesIntactThroughARemoteShell) {
  char dir_template[] = "/tmp/ds_launcher_remote_XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string dir = std::string(dir_template) + "/dir with 'quote'";
  std::filesystem::create_directories(dir);
  const std::string agent = dir + "/print args";
  {
    std::ofstream script(agent);
    script << "#!/bin/bash\npwd\nprintf '%s\\n' \"$HOSTILE\" \"$NCCL_DEBUG\"\nfor a in \"$@\"; do printf '<%s>\\n' \"$a\"; done\n";
  }
  std::filesystem::permissions(agent, std::filesystem::perms::owner_all);
  const auto command = sample_command(agent, dir);
  const std::string line = agent_shell_command(command, "--node_rank=1");
  EXPECT_EQ(run_bash("cd / && " + line),
            dir + "\n" + command.exports[1].second + "\nINFO\n<--no_ssh>\n<--node_rank=1>\n<--world_info=eyJhIjogWzBdfQ==>\n"
                "<--master_addr=node-0>\n<--master_port=29511>\n<--no_local_rank>\n<-->\n<./my train>\n<--lr>\n<1e-3>\n"
                "<a b>\n<it's>\n<$(echo no)>\n<100%>\n");
  EXPECT_FALSE(std::filesystem::exists("/tmp/ds_pwned"));
  std::filesystem::remove_all(dir_template);
}

TEST(LauncherAgentCommand, SourcesVenvAndFailsWhenDirectoryIsMissing) {
  auto command = sample_command("/bin/true", "/nonexistent/dir");
  command.venv_script = "/opt/env.sh";
  const auto line = agent_shell_command(command, "--node_rank=0");
  EXPECT_NE(line.find("cd /nonexistent/dir || exit 1; "), std::string::npos) << line;
  EXPECT_NE(line.find(". /opt/env.sh; exec /bin/true"), std::string::npos) << line;
}

TEST(LauncherSsh, ArgvShapes) {
  EXPECT_EQ(ssh_argv("h1", 2222, {"-i", "key"}, "cmd"),
            (std::vector<std::string>{"ssh", "-o", "BatchMode=yes", "-p", "2222", "-i", "key", "h1", "cmd"}));
  EXPECT_EQ(ssh_check_argv("h1", std::nullopt, {}),
            (std::vector<std::string>{"ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "h1", "true"}));
}

TEST(LauncherPdsh, PercentSignsAreEscapedExceptTheHostSubstitution) {
  const WorldInfo world{{"w0", {0}}, {"w1", {0, 1}}};
  const auto argv = pdsh_argv(world, {"-R", "ssh"}, sample_command("/bin/ds", "/work"));
  ASSERT_EQ(argv.size(), 9u);
  EXPECT_EQ(std::vector<std::string>(argv.begin(), argv.begin() + 8),
            (std::vector<std::string>{"pdsh", "-S", "-f", "1024", "-w", "w0,w1", "-R", "ssh"}));
  EXPECT_NE(argv[8].find(" --node_host=%h "), std::string::npos) << argv[8];
  // The user's "100%" must reach the remote shell as "100%" after pdsh turns %% into %.
  EXPECT_EQ(argv[8].substr(argv[8].size() - 6), " 100%%") << argv[8];
  EXPECT_EQ(argv[8].find("PLACEHOLDER"), std::string::npos);
  const auto kill = pdsh_kill_argv(world, {}, sample_command("/bin/ds", "/work"));
  EXPECT_EQ(kill.back(), "pkill -TERM -f -- '--world_info=eyJhIjogWzBdfQ== --master_addr=[^ ]* --master_port=29511( |$)'");
}

TEST(LauncherMpi, MpirunAndSrunArgv) {
  const WorldInfo world{{"a", {0, 1}}, {"b", {0, 1}}};
  EXPECT_EQ(mpirun_argv(world, "/job/hostfile", {"--bind-to", "none"}, {{"NCCL_DEBUG", "INFO"}}, "a", 29500, "./t", {"--x"}),
            (std::vector<std::string>{"mpirun", "-n", "4", "-hostfile", "/job/hostfile", "--mca", "btl", "^openib", "--mca",
                                      "btl_tcp_if_include", "eth0", "--bind-to", "none", "-x", "NCCL_DEBUG=INFO", "-x",
                                      "MASTER_ADDR=a", "-x", "MASTER_PORT=29500", "./t", "--x"}));
  const auto custom = mpirun_argv(world, "hf", {"--mca", "btl_tcp_if_include", "ib0"}, {}, "a", 1, "./t", {});
  EXPECT_EQ(std::count(custom.begin(), custom.end(), "eth0"), 0);
  EXPECT_EQ(srun_argv(world, 2, {"-p", "gpu"}, "./t", {"a b"}),
            (std::vector<std::string>{"srun", "-n", "4", "--nodes", "2", "-p", "gpu", "--export=ALL", "./t", "a b"}));
}

}  // namespace
}  // namespace deepspeed::launcher
