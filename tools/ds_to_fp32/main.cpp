// ds_to_fp32: a deepspeed.cpp checkpoint (any ZeRO stage, any number of ranks) → one fp32 state dict that
// PyTorch's torch.load and LibTorch's torch::pickle_load both read. DeepSpeed's zero_to_fp32.py, in C++.
//
//   ds_to_fp32 CHECKPOINT_DIR OUTPUT_FILE [--tag global_step100]
#include <cstdio>

#include <CLI/CLI.hpp>

#include "deepspeed/checkpoint/files.h"
#include "deepspeed/zero/consolidate.h"
#include "deepspeed/util/error.h"

int main(int argc, char** argv) {
  deepspeed::install_error_handler();
  CLI::App app{"Consolidate a deepspeed.cpp checkpoint into one fp32 state dict"};
  std::string checkpoint_dir, output, tag;
  app.add_option("checkpoint_dir", checkpoint_dir, "directory given to save_checkpoint (holds 'latest')")->required();
  app.add_option("output_file", output, "where to write the state dict")->required();
  app.add_option("-t,--tag", tag, "checkpoint tag (default: the one 'latest' names)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::fprintf(stderr, "ds_to_fp32: error: %s\n", e.what());
    return 2;
  }
  const auto state = deepspeed::zero::fp32_state_dict(checkpoint_dir, tag.empty() ? std::nullopt : std::optional(tag));
  deepspeed::checkpoint::save_state_dict(state, output);
  std::int64_t numel = 0;
  for (const auto& [name, t] : state) numel += t.numel();
  std::printf("ds_to_fp32: wrote %zu tensors (%lld values) to %s\n", state.size(), static_cast<long long>(numel),
              output.c_str());
  return 0;
}
