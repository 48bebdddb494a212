// Built instead of the TensorBoard writer when protobuf or ISA-L was missing at configure time.
#include "deepspeed/monitor/monitor.h"
#include "deepspeed/util/error.h"

namespace deepspeed::monitor {

std::unique_ptr<Sink> make_tensorboard_sink(const config::MonitorSinkConfig&) {
  throw ConfigError(
      "tensorboard.enabled: this build of deepspeed.cpp has no TensorBoard writer (protobuf and ISA-L were not "
      "found when it was configured: install libprotobuf-dev, protobuf-compiler and libisal-dev, then re-run "
      "scripts/setup.sh); csv_monitor works without them");
}

}  // namespace deepspeed::monitor
