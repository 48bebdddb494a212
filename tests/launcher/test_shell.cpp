// Unit tests: shell quoting and word splitting (tools/launcher/shell.h). Quoting is checked against a real
// /bin/sh, the only judge that matters.
#include <gtest/gtest.h>

#include <cstdio>
#include <memory>

#include "deepspeed/util/error.h"
#include "tools/launcher/shell.h"

namespace deepspeed::launcher {
namespace {

const std::vector<std::string>& hostile_words() {
  static const std::vector<std::string> words = {
      "plain", "", "with space", "it's", "'", "''", "\"double\"", "$(touch /tmp/ds_launcher_pwned)", "`id`",
      "a;b", "a&&b|c", "new\nline", "tab\there", "back\\slash", "*", "~", "$HOME", "!x", "{a,b}", "--flag=v w",
      "%n%h%%", "-", "#comment", "\xc3\xa9t\xc3\xa9"};
  return words;
}

std::string sh_output(const std::string& script) {
  const std::string command = "/bin/sh -c " + shell_quote(script);
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
  std::string out;
  char buffer[256];
  std::size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe.get())) > 0) out.append(buffer, n);
  return out;
}

TEST(LauncherShell, SafeWordsStayReadable) {
  EXPECT_EQ(shell_quote("worker-1"), "worker-1");
  EXPECT_EQ(shell_quote("--world_info=eyJhIjogWzBdfQ=="), "--world_info=eyJhIjogWzBdfQ==");
  EXPECT_EQ(shell_quote("/a/b.c:d,e@f%g+h"), "/a/b.c:d,e@f%g+h");
  EXPECT_EQ(shell_quote(""), "''");
  EXPECT_EQ(shell_quote("it's"), "'it'\\''s'");
}

TEST(LauncherShell, HostileWordsSurviveARealShell) {
  for (const auto& word : hostile_words()) {
    EXPECT_EQ(sh_output("printf %s " + shell_quote(word)), word) << "word: " << word;
  }
  std::string expected;
  for (const auto& word : hostile_words()) expected += "<" + word + ">";
  EXPECT_EQ(sh_output("printf '<%s>' " + shell_join(hostile_words())), expected);
}

TEST(LauncherShell, SplitIsTheInverseOfJoin) {
  EXPECT_EQ(split_shell_words(shell_join(hostile_words()), "x"), hostile_words());
}

TEST(LauncherShell, SplitFollowsShellRules) {
  EXPECT_EQ(split_shell_words("  -p 22  -o 'Strict HostKeyChecking=no' \"a \\\"b\\\" \\$c\" d\\ e ", "x"),
            (std::vector<std::string>{"-p", "22", "-o", "Strict HostKeyChecking=no", "a \"b\" $c", "d e"}));
  EXPECT_TRUE(split_shell_words("   ", "x").empty());
  EXPECT_EQ(split_shell_words("''", "x"), (std::vector<std::string>{""}));
}

TEST(LauncherShell, SplitErrorsNameTheFlag) {
  for (const char* bad : {"'open", "\"open", "trailing\\"}) {
    try {
      split_shell_words(bad, "--launcher_args");
      ADD_FAILURE() << bad;
    } catch (const UsageError& e) {
      EXPECT_EQ(std::string(e.what()).rfind("--launcher_args: ", 0), 0u) << e.what();
    }
  }
}

}  // namespace
}  // namespace deepspeed::launcher
