// Test stand-in for a training program, started by the launcher under test. It records what it was given
// (argv, environment, pid) in files under --out and then behaves as the test asks:
//   fake_rank [--local_rank=N] --out DIR [--act SPEC] [--act-rank R:SPEC]... [--grandchild] [--print TEXT]
//             [-- ignored user args...]
// SPEC: exit:N[:MS] (exit with N after MS milliseconds), sleep (until killed), sleep_ignore_term (ignores
// SIGTERM). --act sets every rank's SPEC, --act-rank overrides one global rank. --grandchild forks a process
// that stays in the rank's process group and sleeps (on SIGTERM it creates DIR/grandchild<R>.sigterm and
// exits); --escapee forks one that leaves the group (setsid) and
// sleeps. --print writes "TEXT from rank R" to stdout and
// "TEXT on stderr from rank R" to stderr.
// Files: DIR/rank<R>.txt (one "argv[i]=..." line per argument, one "env:KEY=VALUE" line per variable, and
// "affinity=<cores>"),
// DIR/rank<R>.pid, DIR/grandchild<R>.pid, DIR/escapee<R>.pid. Each is written to a temporary name and renamed, so a reader
// never sees half a file.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

void write_file(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << text;
  }
  std::rename(tmp.c_str(), path.c_str());
}

char g_sigterm_marker[4096];

void record_sigterm(int) {
  const int fd = open(g_sigterm_marker, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) close(fd);
  _exit(0);
}

/// The rank only goes on once its descendant has recorded its pid, so the test knows every process to check.
void wait_for_file(const std::string& path) {
  for (int i = 0; i < 500 && access(path.c_str(), F_OK) != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

[[noreturn]] void sleep_forever() {
  while (true) pause();
}

}  // namespace

int main(int argc, char** argv) {
  const char* rank_env = std::getenv("RANK");
  const std::string rank = rank_env != nullptr ? rank_env : "unknown";
  std::string out_dir, spec = "exit:0", rank_spec, text;
  bool grandchild = false;
  bool escapee = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--") break;
    if (arg == "--out" && i + 1 < argc) out_dir = argv[++i];
    else if (arg == "--act" && i + 1 < argc) spec = argv[++i];
    else if (arg == "--act-rank" && i + 1 < argc) {
      const std::string value = argv[++i];
      const auto colon = value.find(':');
      if (value.substr(0, colon) == rank) rank_spec = value.substr(colon + 1);
    } else if (arg == "--grandchild") grandchild = true;
    else if (arg == "--escapee") escapee = true;
    else if (arg == "--print" && i + 1 < argc) text = argv[++i];
  }
  if (!rank_spec.empty()) spec = rank_spec;
  if (out_dir.empty()) {
    std::fprintf(stderr, "fake_rank: --out DIR is required\n");
    return 99;
  }
  std::string record;
  for (int i = 0; i < argc; ++i) record += "argv[" + std::to_string(i) + "]=" + argv[i] + "\n";
  for (char** e = environ; *e != nullptr; ++e) record += std::string("env:") + *e + "\n";
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  std::string affinity;
  if (sched_getaffinity(0, sizeof cpus, &cpus) == 0) {
    for (int c = 0; c < CPU_SETSIZE; ++c) {
      if (CPU_ISSET(c, &cpus)) affinity += (affinity.empty() ? "" : ",") + std::to_string(c);
    }
  }
  record += "affinity=" + affinity + "\n";
  if (!text.empty()) {
    std::printf("%s from rank %s\n", text.c_str(), rank.c_str());
    std::fprintf(stderr, "%s on stderr from rank %s\n", text.c_str(), rank.c_str());
    std::fflush(stdout);
  }
  if (spec == "sleep_ignore_term") signal(SIGTERM, SIG_IGN);
  if (grandchild) {
    const pid_t child = fork();
    if (child == 0) {
      std::snprintf(g_sigterm_marker, sizeof g_sigterm_marker, "%s/grandchild%s.sigterm", out_dir.c_str(), rank.c_str());
      signal(SIGTERM, record_sigterm);
      write_file(out_dir + "/grandchild" + rank + ".pid", std::to_string(getpid()));
      sleep_forever();
    }
    wait_for_file(out_dir + "/grandchild" + rank + ".pid");
  }
  if (escapee) {
    const pid_t child = fork();
    if (child == 0) {
      setsid();
      write_file(out_dir + "/escapee" + rank + ".pid", std::to_string(getpid()));
      sleep_forever();
    }
    wait_for_file(out_dir + "/escapee" + rank + ".pid");
  }
  write_file(out_dir + "/rank" + rank + ".txt", record);
  write_file(out_dir + "/rank" + rank + ".pid", std::to_string(getpid()));

  if (spec == "sleep" || spec == "sleep_ignore_term") sleep_forever();
  if (spec.rfind("exit:", 0) == 0) {
    const std::string rest = spec.substr(5);
    const auto colon = rest.find(':');
    const int code = std::atoi(rest.substr(0, colon).c_str());
    if (colon != std::string::npos) {
      std::this_thread::sleep_for(std::chrono::milliseconds(std::atoi(rest.substr(colon + 1).c_str())));
    }
    return code;
  }
  std::fprintf(stderr, "fake_rank: unknown action '%s'\n", spec.c_str());
  return 98;
}
