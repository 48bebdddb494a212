#pragma once
/// \file
/// Monitors: where the engine's scalar events go (DeepSpeed's MonitorMaster and its writers).
///
/// An event is DeepSpeed's (name, value, step) tuple, e.g. ("Train/Samples/train_loss", 2.31, 512), keyed by
/// the samples seen. The engine produces them; each Sink writes them somewhere. A new destination is one
/// small class implementing Sink. Only rank 0 has sinks (DeepSpeed's monitors write on rank 0 alone); on
/// other ranks a Monitor is empty and every call is a no-op. Not thread-safe: the training thread calls it.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "deepspeed/config/config.h"

namespace deepspeed::monitor {

struct Event {
  std::string name;
  double value = 0.0;
  std::int64_t step = 0;
};

/// One destination of events.
class Sink {
 public:
  virtual ~Sink() = default;
  /// Writes `events` and makes them durable enough to survive a crash of the job (DeepSpeed flushes after
  /// every batch of events; events come once per optimizer step at most, so that costs nothing measurable).
  virtual void write(const std::vector<Event>& events) = 0;
  /// The directory or file it writes, for the start-up log.
  virtual std::string location() const = 0;
};

class Monitor {
 public:
  Monitor() = default;
  /// The sinks `config` enables, on `rank` 0 only. Creates their directories; throws UsageError naming the
  /// path when one cannot be created or written.
  static Monitor from_config(const config::Config& config, int rank);

  bool enabled() const { return !sinks_.empty(); }
  void add(std::unique_ptr<Sink> sink) { sinks_.push_back(std::move(sink)); }
  void write(const std::vector<Event>& events);
  const std::vector<std::unique_ptr<Sink>>& sinks() const { return sinks_; }

 private:
  std::vector<std::unique_ptr<Sink>> sinks_;
};

/// DeepSpeed's csvMonitor: a file per event name in <output_path>/<job_name>/ ('/' and ' ' in the name become
/// '_'), a "step,<last name component>" header the first time this process writes it, then "step,value" rows,
/// appended, CRLF-terminated as Python's csv module writes them.
std::unique_ptr<Sink> make_csv_sink(const config::MonitorSinkConfig& config);

/// DeepSpeed's TensorBoardMonitor: an event file (events.out.tfevents.<time>.<host>.<pid>.0) in
/// <output_path>/<job_name>/, scalars as TensorBoard's simple_value summaries. Throws ConfigError when this
/// build has no TensorBoard writer (protobuf or ISA-L missing at configure time).
std::unique_ptr<Sink> make_tensorboard_sink(const config::MonitorSinkConfig& config);

/// Creates <output_path>/<job_name> (DeepSpeed's join; an empty output_path means the working directory) and
/// returns it. Throws UsageError naming `<section>.output_path` when it cannot be created.
std::string create_log_directory(const config::MonitorSinkConfig& config, const char* section);

}  // namespace deepspeed::monitor
