// The printed profile, in DeepSpeed's layout (profiler.py's print_model_profile): summary lines padded to 70
// columns, the aggregated per-depth view as Python dict reprs, and the detailed tree as PyTorch's module repr.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>

#include "deepspeed/profiling/flops_profiler.h"
#include "deepspeed/util/error.h"
#include "src/profiling/profiler_impl.h"

namespace deepspeed::profiling {
namespace {

// Python's round(x, 2): "%.2f" rounds the exact binary value correctly (ties to even), as round() does.
double round2(double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f", x);
  return std::strtod(buf, nullptr);
}

// Python's "{:g}" (six significant digits, trailing zeros dropped) is C's "%g".
std::string fmt_g(double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", x);
  return buf;
}

// str(round(x, 2)) for a Python float: at least one decimal ("433.0", "433.07").
std::string float_str2(double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f", x);
  std::string s = buf;
  while (s.size() > 1 && s.back() == '0' && s[s.size() - 2] != '.') s.pop_back();
  return s;
}

std::string pad(std::string s, std::size_t width) {
  if (s.size() < width) s.append(width - s.size(), ' ');
  return s;
}

// DeepSpeed's '{:<70}  {:<8}' summary line.
void line(std::string& out, const std::string& label, const std::string& value) {
  out += pad(label, 70) + "  " + pad(value, 8) + "\n";
}

std::string percent(double part, double total) { return fmt_g(total != 0 ? round2(100 * part / total) : 0) + "%"; }

std::string add_indent(const std::string& text, int spaces) {
  std::string out;
  for (char c : text) {
    out += c;
    if (c == '\n') out.append(spaces, ' ');
  }
  return out;
}

struct TreePrinter {
  const FlopsProfiler::Impl& impl;
  const std::vector<ModuleProfile>& profiles;
  const ModuleProfile& total;

  // PyTorch's Module.__repr__ with DeepSpeed's figures in front of the module's own extra_repr.
  std::string repr(int index) const {
    const auto& node = impl.nodes[index];
    const auto& p = profiles[index];
    std::string extra = params_to_string(static_cast<double>(p.params)) + " = " +
                        percent(static_cast<double>(p.params), static_cast<double>(total.params)) + " Params, " +
                        macs_to_string(static_cast<double>(p.macs)) + " = " +
                        percent(static_cast<double>(p.macs), static_cast<double>(total.macs)) + " MACs, " +
                        duration_to_string(p.latency_s) + " = " + percent(p.latency_s, total.latency_s) +
                        " latency, " +
                        flops_to_string(p.latency_s > 0 ? round2(static_cast<double>(p.flops) / p.latency_s) : 0);
    if (!node.extra_repr.empty()) extra += ", " + node.extra_repr;
    std::string text = node.type + "(";
    if (node.children.empty() && extra.find('\n') == std::string::npos) return text + extra + ")";
    text += "\n  " + add_indent(extra, 2);
    for (int child : node.children) {
      text += "\n  (" + impl.nodes[child].key + "): " + add_indent(repr(child), 2);
    }
    return text + "\n)";
  }
};

}  // namespace

std::string number_to_string(double num) {
  double magnitude = 1;
  const char* units = "";
  if (num >= 1e12) {
    magnitude = 1e12, units = "T";
  } else if (num >= 1e9) {
    magnitude = 1e9, units = "G";
  } else if (num >= 1e6) {
    magnitude = 1e6, units = "M";
  } else if (num >= 1e3) {
    magnitude = 1e3, units = "K";
  } else if (num >= 1 || num == 0) {
    magnitude = 1, units = "";
  } else if (num >= 1e-3) {
    magnitude = 1e-3, units = "m";
  } else {
    magnitude = 1e-6, units = "u";
  }
  return fmt_g(round2(num / magnitude)) + " " + units;
}

std::string macs_to_string(double macs) { return number_to_string(macs) + "MACs"; }
std::string flops_to_string(double flops) { return number_to_string(flops) + "FLOPS"; }
std::string duration_to_string(double seconds) { return number_to_string(seconds) + "s"; }

std::string params_to_string(double params) {
  std::string s = number_to_string(params);
  for (char& c : s) {
    if (c == 'G') c = 'B';
  }
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

std::string FlopsProfiler::report(const ReportContext& ctx) const {
  const auto profiles = impl_->profiles();
  const ModuleProfile& total = profiles[0];
  const auto flops = static_cast<double>(total.flops);
  const bool engine = ctx.world_size > 0;
  std::string out;
  out += "\n-------------------------- DeepSpeed Flops Profiler --------------------------\n";
  out += "Profile Summary at step " + std::to_string(ctx.step) + ":\n";
  out += "Notations:\n"
         "data parallel size (dp_size), model parallel size(mp_size),\n"
         "number of parameters (params), number of multiply-accumulate operations(MACs),\n"
         "number of floating-point operations (flops), floating-point operations per second (FLOPS),\n"
         "fwd latency (forward propagation latency), bwd latency (backward propagation latency),\n"
         "step (weights update latency), iter latency (sum of fwd, bwd and step latency)\n\n";
  if (engine) {
    line(out, "world size: ", std::to_string(ctx.world_size));
    line(out, "data parallel size: ", std::to_string(ctx.dp_size));
    line(out, "model parallel size: ", "1");  // no tensor/model parallelism in deepspeed.cpp
    line(out, "batch size per GPU: ", std::to_string(ctx.batch_per_gpu));
  }
  const auto params = static_cast<double>(total.params);
  line(out, "params per GPU: ", params_to_string(params));
  // DeepSpeed knows the model's size only through its engine (params × mp_size); without one it prints 0.
  line(out, "params of model = params per GPU * mp_size: ", params_to_string(engine ? params : 0));
  line(out, "fwd MACs per GPU: ", macs_to_string(static_cast<double>(total.macs)));
  line(out, "fwd flops per GPU: ", number_to_string(flops));
  line(out, "fwd flops of model = fwd flops per GPU * mp_size: ", number_to_string(flops));
  const double fwd_s = ctx.fwd_ms >= 0 ? ctx.fwd_ms / 1000.0 : total.latency_s;
  const auto per_second = [](double work, double seconds) { return seconds > 0 ? work / seconds : 0.0; };
  line(out, "fwd latency: ", duration_to_string(fwd_s));
  line(out, "fwd FLOPS per GPU = fwd flops per GPU / fwd latency: ", flops_to_string(per_second(flops, fwd_s)));
  if (ctx.bwd_ms >= 0 && ctx.step_ms >= 0) {
    // Backward costs twice the forward, plus the share of the forward recomputed (activation checkpointing).
    const double bwd_factor = 2 + impl_->cfg.recompute_fwd_factor;
    const double bwd_s = ctx.bwd_ms / 1000.0, step_s = ctx.step_ms / 1000.0;
    const double iter_s = fwd_s + bwd_s + step_s;
    line(out, "bwd latency: ", duration_to_string(bwd_s));
    line(out, "bwd FLOPS per GPU = " + fmt_g(bwd_factor) + " * fwd flops per GPU / bwd latency: ",
         flops_to_string(per_second(bwd_factor * flops, bwd_s)));
    line(out, "fwd+bwd FLOPS per GPU = " + fmt_g(bwd_factor + 1) + " * fwd flops per GPU / (fwd+bwd latency): ",
         flops_to_string(per_second((bwd_factor + 1) * flops, fwd_s + bwd_s)));
    line(out, "step latency: ", duration_to_string(step_s));
    line(out, "iter latency: ", duration_to_string(iter_s));
    line(out, "FLOPS per GPU = " + fmt_g(bwd_factor + 1) + " * fwd flops per GPU / iter latency: ",
         flops_to_string(per_second((bwd_factor + 1) * flops, iter_s)));
    // DeepSpeed's samples per iteration: micro batch × world size.
    const double samples = static_cast<double>(ctx.batch_per_gpu * std::max<std::int64_t>(ctx.world_size, 1));
    line(out, "samples/second: ", float_str2(round2(per_second(samples, iter_s))));
  }

  // Aggregated view: per depth, module classes in first-seen (depth-first) order, summed over their modules.
  struct Aggregate {
    std::string type;
    double macs = 0, params = 0, latency = 0;
  };
  std::map<int, std::vector<Aggregate>> by_depth;
  for (const auto& p : profiles) {
    auto& row = by_depth[p.depth];
    auto it = std::find_if(row.begin(), row.end(), [&](const Aggregate& a) { return a.type == p.type; });
    if (it == row.end()) it = row.insert(row.end(), Aggregate{p.type});
    it->macs += static_cast<double>(p.macs);
    it->params += static_cast<double>(p.params);
    it->latency += p.latency_s;
  }
  const int top = impl_->cfg.top_modules;
  out += "\n----------------------------- Aggregated Profile per GPU -----------------------------\n";
  out += "Top " + std::to_string(top) + " modules in terms of params, MACs or fwd latency at different model depths:\n";
  // DeepSpeed's range: depths 0 … module_depth−1, and with −1 every depth but the innermost.
  const int depths = static_cast<int>(by_depth.size());
  const int last = std::min(impl_->cfg.module_depth == -1 ? depths - 1 : impl_->cfg.module_depth, depths);
  const auto ranked = [&](const std::vector<Aggregate>& row, double Aggregate::*key, std::string (*fmt)(double)) {
    std::vector<Aggregate> sorted = row;
    std::stable_sort(sorted.begin(), sorted.end(), [&](const auto& a, const auto& b) { return a.*key > b.*key; });
    std::string s = "{";
    for (std::size_t i = 0; i < sorted.size() && static_cast<int>(i) < top; ++i) {
      s += (i ? ", '" : "'") + sorted[i].type + "': '" + fmt(sorted[i].*key) + "'";
    }
    return s + "}";
  };
  for (int d = 0; d < last; ++d) {
    out += "depth " + std::to_string(d) + ":\n";
    out += "    params      - " + ranked(by_depth[d], &Aggregate::params, params_to_string) + "\n";
    out += "    MACs        - " + ranked(by_depth[d], &Aggregate::macs, macs_to_string) + "\n";
    out += "    fwd latency - " + ranked(by_depth[d], &Aggregate::latency, duration_to_string) + "\n";
  }

  if (impl_->cfg.detailed) {
    out += "\n------------------------------ Detailed Profile per GPU ------------------------------\n";
    out += "Each module profile is listed after its name in the following order: \n"
           "params, percentage of total params, MACs, percentage of total MACs, fwd latency, percentage of total "
           "fwd latency, fwd FLOPS\n\n";
    out += "Note: 1. Operators that take no parameter (functional activations and pooling, additions, attention "
           "on activations) are charged to the top module only; a module's figures cover the operators that "
           "use its parameters.\n"
           "2. Floating-point operation counts are estimates from operand shapes; FLOPS derived from them can "
           "exceed what the hardware can do.\n"
           "3. A module's fwd latency is the time of its counted operators, each timed alone; the summary's fwd "
           "latency is the whole forward pass as the engine measured it.\n\n";
    out += TreePrinter{*impl_, profiles, total}.repr(0) + "\n";
  }
  out += "------------------------------------------------------------------------------\n";
  return out;
}

void FlopsProfiler::write_report(const ReportContext& ctx) const {
  const std::string text = report(ctx);
  const auto& file = impl_->cfg.output_file;
  if (!file || file->empty()) {
    std::cout << text << std::flush;
    return;
  }
  const auto path = std::filesystem::absolute(*file);
  std::error_code ec;
  std::filesystem::create_directories(path.parent_path(), ec);
  std::ofstream out(path, std::ios::trunc);
  out << text;
  out.close();
  if (!out) throw UsageError("flops_profiler.output_file: cannot write " + path.string());
}

}  // namespace deepspeed::profiling
