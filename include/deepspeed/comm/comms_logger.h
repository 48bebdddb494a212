#pragma once
/// \file
/// DeepSpeed's comms_logger: every collective this rank launches (or those named in prof_ops), counted and
/// timed per message size, with algorithmic and bus bandwidth as nccl-tests defines them, and DeepSpeed's
/// summary table.
///
/// Timing: under NCCL each collective is timed by CUDA events on the NCCL stream (c10d's collective timing),
/// read once the collective has finished, so logging neither blocks the host nor serialises communication
/// with compute (DeepSpeed synchronises the device around every logged op). Under Gloo it is the host time
/// from launch until the caller's wait() returns (c10d's Gloo works do not all offer a completion future, so
/// the communicator's Work reports it). Latency therefore includes waiting
/// behind earlier collectives queued on the same stream or thread, as the caller experiences it.
///
/// Message size is the whole buffer, as nccl-tests reports it: the tensor for all_reduce and broadcast, the
/// world_size× buffer for all_gather_into_tensor (its output) and reduce_scatter_tensor (its input).
/// Bandwidths (Gbps): algbw = size / time; busbw = algbw × 2(n−1)/n for all_reduce, × (n−1)/n for all-gather
/// and reduce-scatter, × 1 for broadcast. (DeepSpeed's "tput" for all_reduce is 2·size/time, and it scales
/// reduce-scatter sizes by n a second time; our figures follow nccl-tests so they compare with its tables.)
///
/// Thread-safe: collectives are launched from the training and autograd threads and complete on backend threads.

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <c10/util/intrusive_ptr.h>
#include <torch/csrc/distributed/c10d/Work.hpp>

#include "deepspeed/config/config.h"

namespace deepspeed::comm {

struct Bandwidth {
  double algbw_gbps = 0.0;
  double busbw_gbps = 0.0;
};

/// nccl-tests' bandwidths for collective `op` (DeepSpeed's op names) moving `bytes` in `ms` on `world_size`
/// ranks. Pure.
Bandwidth collective_bandwidth(std::string_view op, std::int64_t bytes, double ms, int world_size);

/// DeepSpeed's convert_size: "0B", "4.0 B", "1.5 KB", "3.25 MB" (powers of 1024). Pure.
std::string convert_size(std::int64_t bytes);

/// DeepSpeed's trim_mean: the mean after dropping round(10%) of the values from each end. Pure.
double trimmed_mean(std::vector<double> values, double trim = 0.1);

/// Names the component launching collectives on this thread while it lives; with comms_logger.debug the
/// record names carry it (DeepSpeed's "[Caller Func: …]").
class CallerScope {
 public:
  explicit CallerScope(const char* caller);
  ~CallerScope();
  CallerScope(const CallerScope&) = delete;
  CallerScope& operator=(const CallerScope&) = delete;
  static const char* current();

 private:
  const char* previous_;
};

class CommsLogger : public std::enable_shared_from_this<CommsLogger> {
 public:
  CommsLogger(config::CommsLoggerConfig options, int world_size, int rank);

  /// Whether collectives named `op` are recorded (prof_all, or op in prof_ops).
  bool profiles(std::string_view op) const;
  /// DeepSpeed's runtime switches.
  void start_profiling_comms();
  void stop_profiling_comms();
  void start_profiling_op(const std::vector<std::string>& ops);
  void stop_profiling_op(const std::vector<std::string>& ops);

  /// NCCL: called by the Communicator right after launching `work` (with collective timing on); recorded once
  /// its CUDA events have completed, at a later track() or harvest().
  void track(const c10::intrusive_ptr<c10d::Work>& work, std::string_view op, std::int64_t bytes);
  /// Host-timed backends (Gloo): what the Communicator's Work calls when its wait() has returned; records the
  /// time since `launched`. The record name (and caller) is fixed here, on the launching thread.
  std::function<void()> host_timed(std::string_view op, std::int64_t bytes,
                                   std::chrono::steady_clock::time_point launched);
  /// Records one completed collective (also the test seam).
  void append(std::string_view op, const std::string& record_name, std::int64_t bytes, double latency_ms);
  /// Records every tracked NCCL collective that has finished; with `wait`, waits for all of them first.
  void harvest(bool wait);

  struct Row {
    std::string record;  ///< op name, plus " | [Caller Func: …]" with debug
    std::int64_t bytes = 0;
    std::int64_t count = 0;
    double total_ms = 0, avg_ms = 0, algbw_gbps = 0, busbw_gbps = 0;  ///< averages trimmed as DeepSpeed's
  };
  /// One row per (record, message size): records in first-seen order, sizes ascending.
  std::vector<Row> summary();
  /// DeepSpeed's log_summary table (the header, a line per record name, a row per message size).
  std::string summary_table();
  std::int64_t total_operations();
  void reset();

 private:
  struct Samples {
    std::int64_t count = 0;
    std::vector<double> latency_ms, algbw, busbw;
  };
  struct Pending {
    c10::intrusive_ptr<c10d::Work> work;
    std::string op, record;
    std::int64_t bytes = 0;
  };
  std::string record_name(std::string_view op) const;
  void append_locked(std::string_view op, const std::string& record, std::int64_t bytes, double ms);
  void harvest_locked(bool wait);

  config::CommsLoggerConfig options_;
  int world_size_, rank_;
  std::mutex mutex_;
  std::vector<std::string> order_;                                  // record names, first-seen order
  std::map<std::string, std::map<std::int64_t, Samples>> records_;  // record → size → samples
  std::deque<Pending> pending_;                                     // NCCL collectives not yet read
};

}  // namespace deepspeed::comm
