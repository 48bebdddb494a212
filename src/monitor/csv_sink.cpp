// DeepSpeed's csv_monitor file layout (monitor/csv_monitor.py), so scripts written for it read ours.
#include <cstdio>
#include <filesystem>
#include <set>

#include "deepspeed/monitor/monitor.h"
#include "deepspeed/util/error.h"
#include "deepspeed/util/strings.h"

namespace deepspeed::monitor {

using util::cat;

namespace {

class CsvSink final : public Sink {
 public:
  explicit CsvSink(std::filesystem::path dir) : dir_(std::move(dir)) {}

  void write(const std::vector<Event>& events) override {
    for (const auto& e : events) {
      std::string file = e.name;
      for (char& ch : file) {
        if (ch == '/' || ch == ' ') ch = '_';
      }
      const auto path = dir_ / (file + ".csv");
      std::FILE* f = std::fopen(path.c_str(), "a");
      if (!f) throw JobError(cat("csv_monitor: cannot append to ", path.string()));
      std::string text;
      if (headed_.insert(file).second) {
        const auto slash = e.name.rfind('/');
        text += cat("step,", slash == std::string::npos ? e.name : e.name.substr(slash + 1), "\r\n");
      }
      text += cat(e.step, ",", util::py_float(e.value), "\r\n");
      const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
      if (std::fclose(f) != 0 || !ok) throw JobError(cat("csv_monitor: cannot write ", path.string()));
    }
  }

  std::string location() const override { return dir_.string(); }

 private:
  std::filesystem::path dir_;
  std::set<std::string> headed_;  // files this process has written a header to (DeepSpeed's rule)
};

}  // namespace

std::unique_ptr<Sink> make_csv_sink(const config::MonitorSinkConfig& config) {
  return std::make_unique<CsvSink>(create_log_directory(config, "csv_monitor"));
}

}  // namespace deepspeed::monitor
