// TensorBoard event files, as torch.utils.tensorboard.SummaryWriter writes them for DeepSpeed's monitor.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "deepspeed/monitor/monitor.h"
#include "deepspeed/util/error.h"
#include "deepspeed/util/strings.h"
#include "src/monitor/record_writer.h"
#include "monitor/tensorboard_event.pb.h"  // generated from src/monitor/tensorboard_event.proto

namespace deepspeed::monitor {

using util::cat;

namespace {

double wall_time() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string host_name() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0) return "localhost";
  return name;
}

class TensorBoardSink final : public Sink {
 public:
  explicit TensorBoardSink(const std::filesystem::path& dir) : writer_(file_name(dir)) {
    tensorboard::Event header;
    header.set_wall_time(wall_time());
    header.set_file_version("brain.Event:2");
    header.mutable_source_metadata()->set_writer("deepspeed.cpp");
    writer_.append(header.SerializeAsString());
    writer_.flush();
  }

  void write(const std::vector<Event>& events) override {
    for (const auto& e : events) {
      // One event per scalar, as SummaryWriter.add_scalar writes them.
      tensorboard::Event event;
      event.set_wall_time(wall_time());
      event.set_step(e.step);
      auto* value = event.mutable_summary()->add_value();
      value->set_tag(e.name);
      value->set_simple_value(static_cast<float>(e.value));
      writer_.append(event.SerializeAsString());
    }
    writer_.flush();
  }

  std::string location() const override { return writer_.path(); }

 private:
  static std::string file_name(const std::filesystem::path& dir) {
    char stamp[32];
    std::snprintf(stamp, sizeof stamp, "%010lld", static_cast<long long>(wall_time()));
    return (dir / cat("events.out.tfevents.", stamp, ".", host_name(), ".", getpid(), ".0")).string();
  }

  RecordWriter writer_;
};

}  // namespace

std::unique_ptr<Sink> make_tensorboard_sink(const config::MonitorSinkConfig& config) {
  return std::make_unique<TensorBoardSink>(create_log_directory(config, "tensorboard"));
}

}  // namespace deepspeed::monitor
