// `deepspeed`: starts a distributed deepspeed.cpp job. See docs/launcher.md.
#include <iostream>
#include <string>
#include <vector>

#include "deepspeed/util/error.h"
#include "launch.h"
#include "options.h"

int main(int argc, char** argv) {
  using namespace deepspeed;
  const std::vector<std::string> args(argv + 1, argv + argc);
  try {
    const auto options = launcher::parse_launcher_args(args);
    if (options.help) {
      std::cout << launcher::launcher_usage();
      return 0;
    }
    return launcher::launch(options);
  } catch (const std::exception& e) {
    std::cout.flush();
    std::cerr << "deepspeed: error: " << describe(e) << std::endl;
    return exit_code_for(e);
  }
}
