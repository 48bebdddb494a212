#include "deepspeed/arguments.h"

#include <cstdio>
#include <cstdlib>

#include "deepspeed/util/error.h"

namespace deepspeed {

int Arguments::given_local_rank() const {
  if (user_local_rank && user_local_rank->count() > 0) return user_local_rank->as<int>();
  return local_rank;
}

std::shared_ptr<Arguments> add_config_arguments(CLI::App& app) {
  install_error_handler();
  auto args = std::make_shared<Arguments>();
  const std::string group = "DeepSpeed";
  app.add_flag("--deepspeed", args->deepspeed, "Enable DeepSpeed (helper flag for user code, no impact on the engine)")
      ->group(group);
  app.add_option("--deepspeed_config,--deepscale_config", args->deepspeed_config, "DeepSpeed json configuration file")
      ->group(group);
  app.add_flag("--deepscale", args->deepspeed, "Deprecated alias of --deepspeed")->group(group);
  if (const CLI::Option* existing = app.get_option_no_throw("--local_rank")) {
    args->user_local_rank = existing;
  } else {
    app.add_option("--local_rank", args->local_rank, "Local rank passed from the distributed launcher")->group(group);
  }
  return args;
}

}  // namespace deepspeed

namespace deepspeed {

void parse_arguments(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    std::exit(app.exit(e));
  } catch (const CLI::CallForAllHelp& e) {
    std::exit(app.exit(e));
  } catch (const CLI::ParseError& e) {
    std::string program = argc > 0 ? argv[0] : "program";
    program = program.substr(program.find_last_of('/') + 1);
    std::fprintf(stderr, "%s: error: %s\n", program.c_str(), e.what());
    std::exit(2);
  }
}

}  // namespace deepspeed
