// Unit tests: the small policies around processes: core slicing, accelerator choice, grace period parsing,
// exit-status mapping and PATH lookup.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include "deepspeed/util/error.h"
#include "tools/launcher/accelerator.h"
#include "tools/launcher/cores.h"
#include "tools/launcher/process.h"
#include "tools/launcher/supervisor.h"

namespace deepspeed::launcher {
namespace {

TEST(LauncherCores, ParsesDeepSpeedRangeLists) {
  EXPECT_EQ(parse_core_list("1,3-5,7"), (std::vector<int>{1, 3, 4, 5, 7}));
  EXPECT_EQ(parse_core_list("0"), (std::vector<int>{0}));
  for (const char* bad : {"", "a", "3-1", "1,1", "4,2", "1-3,2", "1-", "-1"}) {
    EXPECT_THROW(parse_core_list(bad), UsageError) << bad;
  }
}

TEST(LauncherCores, SlicesCoresPerLocalRank) {
  const std::vector<int> cores{0, 1, 2, 3, 4, 5, 6};
  EXPECT_EQ(cores_for_rank(cores, 3, 0), (std::vector<int>{0, 1}));
  EXPECT_EQ(cores_for_rank(cores, 3, 2), (std::vector<int>{4, 5}));
  EXPECT_THROW(cores_for_rank({0, 1}, 3, 0), UsageError);
}

TEST(LauncherAccelerator, DecidesModeFromEnvAndCount) {
  EXPECT_TRUE(decide_accelerator(nullptr, 0).cpu_mode);
  EXPECT_FALSE(decide_accelerator(nullptr, 8).cpu_mode);
  EXPECT_EQ(decide_accelerator("", 2).gpu_count, 2);
  EXPECT_TRUE(decide_accelerator("cpu", 8).cpu_mode);
  EXPECT_FALSE(decide_accelerator("cuda", 1).cpu_mode);
  EXPECT_THROW(decide_accelerator("cuda", 0), UsageError);
  EXPECT_THROW(decide_accelerator("xpu", 2), UsageError);
}

TEST(LauncherGrace, ParsesSecondsFromEnv) {
  EXPECT_EQ(grace_seconds_from_env(nullptr), 30);
  EXPECT_EQ(grace_seconds_from_env("2"), 2);
  EXPECT_EQ(grace_seconds_from_env("0.5"), 0.5);
  for (const char* bad : {"abc", "-1", "2s", "inf"}) EXPECT_THROW(grace_seconds_from_env(bad), UsageError) << bad;
}

TEST(LauncherProcess, ExitCodesFollowShellConvention) {
  EXPECT_EQ(exit_code_from_status(3 << 8), 3);
  EXPECT_EQ(exit_code_from_status(SIGKILL), 137);
  EXPECT_EQ(exit_code_from_status(SIGTERM), 143);
}

TEST(LauncherProcess, FindProgramLikeExecvp) {
  EXPECT_EQ(find_program("sh", "/nonexistent:/bin"), std::optional<std::string>("/bin/sh"));
  EXPECT_EQ(find_program("/bin/sh", ""), std::optional<std::string>("/bin/sh"));
  EXPECT_FALSE(find_program("definitely-not-a-program-xyz", "/bin:/usr/bin"));
  EXPECT_FALSE(find_program("/etc/passwd", nullptr));  // not executable
  EXPECT_FALSE(find_program("/bin", nullptr));          // a directory
}

}  // namespace
}  // namespace deepspeed::launcher
