#pragma once
/// \file
/// DeepSpeed's command-line flags, added to the user's CLI11 app (deepspeed.add_config_arguments).

#include <memory>
#include <string>

#include <CLI/CLI.hpp>

namespace deepspeed {

/// Values of the DeepSpeed flags after the app has parsed argv.
struct Arguments {
  std::string deepspeed_config;  ///< --deepspeed_config (alias --deepscale_config, deprecated)
  bool deepspeed = false;        ///< --deepspeed: a flag for user code, no effect on the engine
  int local_rank = -1;           ///< --local_rank=N as appended by the launcher (-1: not given)
  /// The user's own --local_rank option when the app already had one (read after parsing).
  const CLI::Option* user_local_rank = nullptr;

  /// --local_rank as given, whichever option holds it; -1 if absent.
  int given_local_rank() const;
};

/// Adds the group "DeepSpeed" to `app`: --deepspeed, --deepspeed_config, --deepscale, --deepscale_config, and
/// --local_rank unless the app already defines it (the launcher appends --local_rank=N to every rank's argv,
/// so the app must accept it either way). The returned object is filled in when the app parses; keep `app`
/// alive until initialize() has run.
std::shared_ptr<Arguments> add_config_arguments(CLI::App& app);

}  // namespace deepspeed

namespace deepspeed {

/// Parses argv like Python's argparse: --help prints usage and exits 0; a bad flag prints one line
/// "<program>: error: <what>" and exits 2. (CLI11_PARSE works too, with CLI11's own exit codes.)
void parse_arguments(CLI::App& app, int argc, char** argv);

}  // namespace deepspeed
