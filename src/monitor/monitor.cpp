#include "deepspeed/monitor/monitor.h"

#include <filesystem>
#include <system_error>

#include "deepspeed/util/error.h"
#include "deepspeed/util/strings.h"

namespace deepspeed::monitor {

std::string create_log_directory(const config::MonitorSinkConfig& config, const char* section) {
  const std::filesystem::path dir = std::filesystem::path(config.output_path) / config.job_name;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw UsageError(util::cat(section, ".output_path: cannot create ", dir.string(), ": ", ec.message()));
  return dir.string();
}

Monitor Monitor::from_config(const config::Config& config, int rank) {
  Monitor monitor;
  if (rank != 0) return monitor;
  if (config.tensorboard.enabled) monitor.add(make_tensorboard_sink(config.tensorboard));
  if (config.csv_monitor.enabled) monitor.add(make_csv_sink(config.csv_monitor));
  return monitor;
}

void Monitor::write(const std::vector<Event>& events) {
  if (events.empty()) return;
  for (auto& sink : sinks_) sink->write(events);
}

}  // namespace deepspeed::monitor
