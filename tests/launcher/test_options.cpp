// Unit tests: launcher command-line parsing (tools/launcher/options.h).
#include <gtest/gtest.h>

#include "deepspeed/util/error.h"
#include "tools/launcher/options.h"

namespace deepspeed::launcher {
namespace {

std::string error_of(const std::vector<std::string>& args) {
  try {
    parse_launcher_args(args);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(LauncherOptions, DefaultsMatchDeepSpeed) {
  const auto o = parse_launcher_args({"prog"});
  EXPECT_EQ(o.hostfile, "/job/hostfile");
  EXPECT_EQ(o.master_port, 29500);
  EXPECT_EQ(o.num_gpus, -1);
  EXPECT_EQ(o.num_nodes, -1);
  EXPECT_EQ(o.backend, Backend::kSsh);
  EXPECT_FALSE(o.rank_log_dir.has_value());
  EXPECT_EQ(o.program, "prog");
}

TEST(LauncherOptions, EverythingAfterTheProgramIsUntouched) {
  const auto o = parse_launcher_args({"-H", "hf", "--num_gpus=2", "./train", "--num_gpus", "7", "-H", "--", "x"});
  EXPECT_EQ(o.hostfile, "hf");
  EXPECT_EQ(o.num_gpus, 2);
  EXPECT_EQ(o.program, "./train");
  EXPECT_EQ(o.program_args, (std::vector<std::string>{"--num_gpus", "7", "-H", "--", "x"}));
}

TEST(LauncherOptions, ValueSpellingsAliasesAndPrefixes) {
  auto o = parse_launcher_args({"-Hmy_hosts", "-i", "a:0", "p"});
  EXPECT_EQ(o.hostfile, "my_hosts");
  EXPECT_EQ(o.include, "a:0");
  EXPECT_EQ(parse_launcher_args({"--num_accelerators", "3", "p"}).num_gpus, 3);
  o = parse_launcher_args({"--master_p", "1234", "--launcher=PDSH", "--no_python", "--", "-weird-name"});
  EXPECT_EQ(o.master_port, 1234);
  EXPECT_EQ(o.backend, Backend::kPdsh);
  EXPECT_EQ(o.program, "-weird-name");
  o = parse_launcher_args({"--enable_each_rank_log", "None", "-q", "p"});
  EXPECT_FALSE(o.rank_log_dir.has_value());
  EXPECT_EQ(o.log_level, "error");
}

TEST(LauncherOptions, BadFlagsAreOneLineErrorsNamingTheFlag) {
  EXPECT_NE(error_of({"--bogus", "p"}).find("unrecognized option '--bogus'"), std::string::npos);
  EXPECT_NE(error_of({"--num_gpu", "2", "--forc_multi", "p"}).find("did you mean --force_multi?"), std::string::npos);
  EXPECT_NE(error_of({"--num", "2", "p"}).find("ambiguous option '--num'"), std::string::npos);
  EXPECT_NE(error_of({"--num_gpus", "two", "p"}).find("--num_gpus: expected an integer >= 1, got 'two'"), std::string::npos);
  EXPECT_NE(error_of({"--num_gpus", "0", "p"}).find("--num_gpus"), std::string::npos);
  EXPECT_NE(error_of({"--master_port", "70000", "p"}).find("[1, 65535]"), std::string::npos);
  EXPECT_NE(error_of({"--hostfile"}).find("--hostfile: expected a value"), std::string::npos);
  EXPECT_NE(error_of({"--no_ssh=1", "p"}).find("--no_ssh takes no value"), std::string::npos);
  EXPECT_NE(error_of({"--launcher", "mpich", "p"}).find("not supported"), std::string::npos);
  EXPECT_NE(error_of({"--launcher", "foo", "p"}).find("expected one of ssh, pdsh, openmpi, slurm"), std::string::npos);
  EXPECT_NE(error_of({"--module", "p"}).find("executables"), std::string::npos);
  EXPECT_NE(error_of({"--log_level", "loud", "p"}).find("--log_level"), std::string::npos);
  EXPECT_NE(error_of({"--num_gpus", "2"}).find("missing the user program"), std::string::npos);
  for (const auto& args : std::vector<std::vector<std::string>>{{"--bogus", "p"}, {"--num_gpus", "x", "p"}, {}}) {
    EXPECT_EQ(error_of(args).find('\n'), std::string::npos);
  }
}

TEST(LauncherOptions, MutuallyExclusiveResourceFlags) {
  EXPECT_NE(error_of({"-i", "a", "-e", "b", "p"}).find("--include and --exclude are mutually exclusive"),
            std::string::npos);
  EXPECT_NE(error_of({"--num_gpus", "2", "-i", "a", "p"}).find("--num_gpus cannot be combined with --include"),
            std::string::npos);
  EXPECT_NE(error_of({"--num_nodes", "1", "-e", "a", "p"}).find("--num_nodes cannot be combined with --exclude"),
            std::string::npos);
  EXPECT_NO_THROW(parse_launcher_args({"--num_nodes", "1", "--num_gpus", "2", "p"}));
}

TEST(LauncherOptions, HelpNeedsNoProgram) {
  EXPECT_TRUE(parse_launcher_args({"--help"}).help);
  EXPECT_NE(launcher_usage().find("--enable_each_rank_log"), std::string::npos);
}

}  // namespace
}  // namespace deepspeed::launcher
