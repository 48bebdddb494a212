#include "deepspeed/comm/comms_logger.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

#include <ATen/core/ivalue.h>

#include "deepspeed/util/logging.h"
#include "deepspeed/util/strings.h"

namespace deepspeed::comm {

using util::cat;

namespace {

thread_local const char* t_caller = nullptr;

std::string fixed2(double v) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.2f", v);
  return buffer;
}

// Python's f"{value: <20}": left-aligned in 20 columns, never truncated.
std::string column(const std::string& text) {
  return text.size() >= 20 ? text : text + std::string(20 - text.size(), ' ');
}

}  // namespace

Bandwidth collective_bandwidth(std::string_view op, std::int64_t bytes, double ms, int world_size) {
  if (ms <= 0.0) return {};
  const double n = world_size;
  const double algbw = static_cast<double>(bytes) / ms * 8.0 / 1e6;  // bytes/ms → Gbit/s
  double factor = 1.0;
  if (op == "all_reduce") factor = 2.0 * (n - 1.0) / n;
  else if (op == "all_gather_into_tensor" || op == "reduce_scatter_tensor") factor = (n - 1.0) / n;
  return {algbw, algbw * factor};
}

std::string convert_size(std::int64_t bytes) {
  if (bytes <= 0) return "0B";
  static const char* kUnits[] = {"B", "KB", "MB", "GB", "TB", "PB", "EB"};
  int i = static_cast<int>(std::floor(std::log(static_cast<double>(bytes)) / std::log(1024.0)));
  i = std::clamp(i, 0, 6);
  const double scaled = static_cast<double>(bytes) / std::pow(1024.0, i);
  return cat(util::py_float(std::round(scaled * 100.0) / 100.0), " ", kUnits[i]);
}

double trimmed_mean(std::vector<double> values, double trim) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const auto n = static_cast<std::int64_t>(values.size());
  const auto k = static_cast<std::int64_t>(std::nearbyint(static_cast<double>(n) * trim));  // Python's round
  if (n - 2 * k <= 0) return 0.0;
  const double sum = std::accumulate(values.begin() + k, values.end() - k, 0.0);
  return sum / static_cast<double>(n - 2 * k);
}

CallerScope::CallerScope(const char* caller) : previous_(t_caller) { t_caller = caller; }
CallerScope::~CallerScope() { t_caller = previous_; }
const char* CallerScope::current() { return t_caller; }

CommsLogger::CommsLogger(config::CommsLoggerConfig options, int world_size, int rank)
    : options_(std::move(options)), world_size_(world_size), rank_(rank) {}

bool CommsLogger::profiles(std::string_view op) const {
  if (options_.prof_all) return true;
  return std::find(options_.prof_ops.begin(), options_.prof_ops.end(), op) != options_.prof_ops.end();
}

void CommsLogger::start_profiling_comms() { options_.prof_all = true; }
void CommsLogger::stop_profiling_comms() { options_.prof_all = false; }

void CommsLogger::start_profiling_op(const std::vector<std::string>& ops) {
  for (const auto& op : ops) {
    if (std::find(options_.prof_ops.begin(), options_.prof_ops.end(), op) == options_.prof_ops.end()) {
      options_.prof_ops.push_back(op);
    }
  }
}

void CommsLogger::stop_profiling_op(const std::vector<std::string>& ops) {
  auto& list = options_.prof_ops;
  list.erase(std::remove_if(list.begin(), list.end(),
                            [&](const std::string& op) { return std::find(ops.begin(), ops.end(), op) != ops.end(); }),
             list.end());
}

std::string CommsLogger::record_name(std::string_view op) const {
  if (!options_.debug) return std::string(op);
  const char* caller = CallerScope::current();
  return cat(op, " | [Caller Func: ", caller ? caller : "user", "]");
}

void CommsLogger::track(const c10::intrusive_ptr<c10d::Work>& work, std::string_view op, std::int64_t bytes) {
  std::string record = record_name(op);
  std::lock_guard<std::mutex> lock(mutex_);
  pending_.push_back({work, std::string(op), std::move(record), bytes});
  harvest_locked(/*wait=*/false);
}

std::function<void()> CommsLogger::host_timed(std::string_view op, std::int64_t bytes,
                                              std::chrono::steady_clock::time_point launched) {
  return [self = shared_from_this(), op = std::string(op), record = record_name(op), bytes, launched] {
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - launched).count();
    self->append(op, record, bytes, ms);
  };
}

void CommsLogger::harvest(bool wait) {
  std::lock_guard<std::mutex> lock(mutex_);
  harvest_locked(wait);
}

void CommsLogger::harvest_locked(bool wait) {
  // In launch order: a later collective on the stream cannot finish before an earlier one.
  while (!pending_.empty()) {
    Pending& p = pending_.front();
    if (!wait && !p.work->isCompleted()) break;
    if (wait) p.work->synchronize();
    double ms = 0.0;
    try {
      ms = p.work->getDuration();
    } catch (const std::exception&) {
      ms = -1.0;  // failed or aborted collective: nothing to time
    }
    if (ms >= 0.0) append_locked(p.op, p.record, p.bytes, ms);
    pending_.pop_front();
  }
}

void CommsLogger::append(std::string_view op, const std::string& record_name, std::int64_t bytes, double ms) {
  std::lock_guard<std::mutex> lock(mutex_);
  append_locked(op, record_name, bytes, ms);
}

void CommsLogger::append_locked(std::string_view op, const std::string& record, std::int64_t bytes, double ms) {
  const Bandwidth bw = collective_bandwidth(op, bytes, ms, world_size_);
  auto [it, inserted] = records_.try_emplace(record);
  if (inserted) order_.push_back(record);
  Samples& s = it->second[bytes];
  ++s.count;
  s.latency_ms.push_back(ms);
  s.algbw.push_back(bw.algbw_gbps);
  s.busbw.push_back(bw.busbw_gbps);
  if (options_.verbose && rank_ == 0) {
    DS_LOG_DIST(kInfo, "comm op: ", record, " | time (ms): ", fixed2(ms), " | msg size: ", convert_size(bytes),
                " | algbw (Gbps): ", fixed2(bw.algbw_gbps), " | busbw (Gbps): ", fixed2(bw.busbw_gbps));
  }
}

std::vector<CommsLogger::Row> CommsLogger::summary() {
  std::lock_guard<std::mutex> lock(mutex_);
  harvest_locked(/*wait=*/false);
  std::vector<Row> rows;
  for (const auto& record : order_) {
    for (const auto& [bytes, s] : records_.at(record)) {
      rows.push_back({record, bytes, s.count, std::accumulate(s.latency_ms.begin(), s.latency_ms.end(), 0.0),
                      trimmed_mean(s.latency_ms), trimmed_mean(s.algbw), trimmed_mean(s.busbw)});
    }
  }
  return rows;
}

std::string CommsLogger::summary_table() {
  std::string out = column("Comm. Op") + column("Message Size") + column("Count") + column("Total Latency(ms)") +
                    column("Avg Latency(ms)") + column("tput_avg (Gbps)") + column("busbw_avg (Gbps)") + "\n";
  std::string current;
  for (const Row& row : summary()) {
    if (row.record != current) {
      current = row.record;
      out += current + "\n";
    }
    out += column("") + column(convert_size(row.bytes)) + column(std::to_string(row.count)) +
           column(fixed2(row.total_ms)) + column(fixed2(row.avg_ms)) + column(fixed2(row.algbw_gbps)) +
           column(fixed2(row.busbw_gbps)) + "\n";
  }
  return out;
}

std::int64_t CommsLogger::total_operations() {
  std::int64_t total = 0;
  for (const Row& row : summary()) total += row.count;
  return total;
}

void CommsLogger::reset() {
  std::lock_guard<std::mutex> lock(mutex_);
  harvest_locked(/*wait=*/false);
  records_.clear();
  order_.clear();
}

}  // namespace deepspeed::comm
