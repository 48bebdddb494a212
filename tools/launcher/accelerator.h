#pragma once
/// \file
/// GPU or CPU mode. The launcher never links CUDA: it dlopen()s the driver (libcuda.so.1) and asks
/// cuInit/cuDeviceGetCount, in a short-lived child process so that the launcher itself stays free of driver
/// threads and a wedged driver cannot hang it.

#include <string>

namespace deepspeed::launcher {

/// The mode ranks run in.
struct AcceleratorChoice {
  bool cpu_mode = true;  ///< true: Gloo CPU ranks, slots are rank slots, CUDA_VISIBLE_DEVICES untouched
  int gpu_count = 0;     ///< CUDA devices visible to the launcher (0 in CPU mode)
  std::string why;       ///< one phrase for the log: "DS_ACCELERATOR=cpu", "no CUDA device found", ...
};

/// Decides the mode from DS_ACCELERATOR (`ds_accelerator`, may be null) and the detected `gpu_count`:
/// "cpu" forces CPU mode; "cuda" requires a GPU; unset/empty picks GPU mode iff gpu_count > 0. Throws
/// UsageError for other DS_ACCELERATOR values and for "cuda" without a GPU.
AcceleratorChoice decide_accelerator(const char* ds_accelerator, int gpu_count);

/// Number of CUDA devices, probed in a child process (at most `timeout_seconds`); 0 when there is no driver,
/// cuInit fails or the probe times out. A non-empty CUDA_VISIBLE_DEVICES is ignored by the probe (slot ids
/// are physical ids; ranks get their own CUDA_VISIBLE_DEVICES), an empty one hides every GPU as usual. The environment variable DS_LAUNCHER_FAKE_GPU_COUNT=N, meant for
/// tests only, replaces the probe with N.
int detect_gpu_count(int timeout_seconds = 20);

/// DS_ACCELERATOR, then detect_gpu_count() only when the answer depends on it. Computed once per process.
AcceleratorChoice detect_accelerator();

}  // namespace deepspeed::launcher
