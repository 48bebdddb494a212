// The observability sections: monitors (tensorboard, csv_monitor; wandb and comet checked but client-less),
// comms_logger and flops_profiler.
#include "src/config/sections.h"

#include <algorithm>

#include "deepspeed/util/strings.h"

namespace deepspeed::config {

using util::cat;

namespace {

void parse_sink(Section& root, const char* key, MonitorSinkConfig& out) {
  Section s = root.child(key);
  s.read("enabled", out.enabled);
  s.read("output_path", out.output_path);
  s.read("job_name", out.job_name);
  if (out.enabled && out.job_name.empty()) s.fail("job_name", "must not be empty (it names the output directory)");
  s.finish();
}

// Neither service has a C++ client, and most clusters' compute nodes have no network: say what to do instead.
void warn_no_client(Section& root, const char* key, const std::string& alternative) {
  root.diagnostics().warnings.push_back(
      cat(root.diagnostics().source, ": ", key, ".enabled: deepspeed.cpp has no ", key,
          " client, so nothing is sent; enable \"tensorboard\" (or \"csv_monitor\") instead", alternative));
}

}  // namespace

void parse_monitoring(Section& root, Config& c) {
  parse_sink(root, "tensorboard", c.tensorboard);
  parse_sink(root, "csv_monitor", c.csv_monitor);

  Section wandb = root.child("wandb");
  wandb.read("enabled", c.wandb.enabled);
  wandb.read("group", c.wandb.group);
  wandb.read("team", c.wandb.team);
  wandb.read("project", c.wandb.project);
  wandb.finish();
  if (c.wandb.enabled) {
    warn_no_client(root, "wandb", " and import its event files with `wandb sync <output_path>/<job_name>`");
  }

  Section comet = root.child("comet");
  comet.read("enabled", c.comet.enabled);
  comet.read("samples_log_interval", c.comet.samples_log_interval, Range{.min = 1.0});
  for (auto [key, field] : {std::pair{"project", &c.comet.project}, {"workspace", &c.comet.workspace},
                            {"api_key", &c.comet.api_key}, {"experiment_name", &c.comet.experiment_name},
                            {"experiment_key", &c.comet.experiment_key}}) {
    comet.read(key, *field);
  }
  comet.read("mode", c.comet.mode, {"get", "create", "get_or_create"});
  comet.read("online", c.comet.online);
  comet.finish();
  if (c.comet.enabled) {
    warn_no_client(root, "comet", " (Comet imports TensorBoard logs: `comet upload` or its TensorBoard integration)");
  }

  Section comms = root.child("comms_logger");
  comms.read("enabled", c.comms_logger.enabled);
  comms.read("verbose", c.comms_logger.verbose);
  comms.read("prof_all", c.comms_logger.prof_all);
  comms.read("debug", c.comms_logger.debug);
  comms.read("prof_ops", c.comms_logger.prof_ops);
  // DeepSpeed's op names (its log_name defaults), which are also the records' names in the summary.
  static const std::vector<std::string> kOps = {"all_reduce", "broadcast", "all_gather_into_tensor",
                                                "reduce_scatter_tensor", "barrier"};
  for (const auto& op : c.comms_logger.prof_ops) {
    if (std::find(kOps.begin(), kOps.end(), op) != kOps.end()) continue;
    const std::string hint = util::closest_match(op, kOps);
    comms.fail("prof_ops", cat("unknown collective \"", op, "\"; expected some of all_reduce, broadcast, "
                               "all_gather_into_tensor, reduce_scatter_tensor, barrier",
                               hint.empty() ? "" : cat(" (did you mean \"", hint, "\"?)")));
  }
  comms.finish();

  Section fp = root.child("flops_profiler");
  fp.read("enabled", c.flops_profiler.enabled);
  fp.read("recompute_fwd_factor", c.flops_profiler.recompute_fwd_factor, Range{.min = 0.0, .max = 1.0});
  fp.read("profile_step", c.flops_profiler.profile_step, Range{.min = 1.0});
  fp.read("module_depth", c.flops_profiler.module_depth, Range{.min = -1.0});
  fp.read("top_modules", c.flops_profiler.top_modules, Range{.min = 1.0});
  fp.read("detailed", c.flops_profiler.detailed);
  fp.read("output_file", c.flops_profiler.output_file);
  fp.finish();
}

}  // namespace deepspeed::config
