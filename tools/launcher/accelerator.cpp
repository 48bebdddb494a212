#include "accelerator.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "deepspeed/util/error.h"
#include "deepspeed/util/strings.h"

namespace deepspeed::launcher {
namespace {

using util::cat;

/// In-process probe; only ever called in the throwaway child.
int probe_cuda_devices() {
  void* driver = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (driver == nullptr) return 0;
  using InitFn = int (*)(unsigned int);
  using CountFn = int (*)(int*);
  auto cu_init = reinterpret_cast<InitFn>(dlsym(driver, "cuInit"));
  auto cu_count = reinterpret_cast<CountFn>(dlsym(driver, "cuDeviceGetCount"));
  int count = 0;
  if (cu_init == nullptr || cu_count == nullptr || cu_init(0) != 0 || cu_count(&count) != 0) return 0;
  return count;
}

}  // namespace

AcceleratorChoice decide_accelerator(const char* ds_accelerator, int gpu_count) {
  const std::string requested = ds_accelerator != nullptr ? ds_accelerator : "";
  if (requested == "cpu") return {true, 0, "DS_ACCELERATOR=cpu"};
  if (!requested.empty() && requested != "cuda") {
    throw UsageError(cat("DS_ACCELERATOR=", requested, ": expected 'cuda' or 'cpu' (the accelerators deepspeed.cpp supports)"));
  }
  if (gpu_count <= 0) {
    if (requested == "cuda") throw UsageError("DS_ACCELERATOR=cuda but no CUDA device was found (libcuda.so.1/cuInit)");
    return {true, 0, "no CUDA device found"};
  }
  return {false, gpu_count, cat(gpu_count, gpu_count == 1 ? " CUDA device" : " CUDA devices")};
}

int detect_gpu_count(int timeout_seconds) {
  if (const char* fake = std::getenv("DS_LAUNCHER_FAKE_GPU_COUNT"); fake != nullptr && *fake != '\0') {
    int count = 0;
    const auto [ptr, ec] = std::from_chars(fake, fake + std::strlen(fake), count);
    if (ec != std::errc() || *ptr != '\0' || count < 0) {
      throw UsageError(cat("DS_LAUNCHER_FAKE_GPU_COUNT=", fake, ": expected a non-negative integer"));
    }
    return count;
  }
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return 0;
  const pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return 0;
  }
  if (pid == 0) {
    close(fds[0]);
    if (const char* visible = std::getenv("CUDA_VISIBLE_DEVICES"); visible != nullptr && *visible != '\0') {
      unsetenv("CUDA_VISIBLE_DEVICES");
    }
    const int count = probe_cuda_devices();
    (void)!write(fds[1], &count, sizeof count);
    _exit(0);
  }
  close(fds[1]);
  int count = 0;
  pollfd pfd{fds[0], POLLIN, 0};
  int ready;
  do {
    ready = poll(&pfd, 1, timeout_seconds * 1000);
  } while (ready < 0 && errno == EINTR);
  if (ready <= 0 || read(fds[0], &count, sizeof count) != static_cast<ssize_t>(sizeof count)) {
    count = 0;
    kill(pid, SIGKILL);
  }
  close(fds[0]);
  while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
  return count < 0 ? 0 : count;
}

AcceleratorChoice detect_accelerator() {
  // Probed once per launcher: cuInit is not free, and the answer cannot change during a launch.
  static const AcceleratorChoice choice = [] {
    const char* requested = std::getenv("DS_ACCELERATOR");
    if (requested != nullptr && std::string(requested) == "cpu") return decide_accelerator(requested, 0);
    return decide_accelerator(requested, detect_gpu_count());
  }();
  return choice;
}

}  // namespace deepspeed::launcher
