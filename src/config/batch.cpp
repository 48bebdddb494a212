#include "deepspeed/config/config.h"
#include "deepspeed/util/strings.h"

namespace deepspeed::config {

BatchSizes resolve_batch(std::optional<std::int64_t> train, std::optional<std::int64_t> micro,
                         std::optional<std::int64_t> gas, int world_size, const std::string& source) {
  using util::cat;
  const auto fail = [&](const std::string& message) -> void { throw ConfigError(cat(source, ": ", message)); };
  const std::int64_t ws = world_size;
  // Same precedence and integer division as DeepSpeed's _set_batch_related_parameters, so a config that
  // DeepSpeed accepts resolves to the same numbers here, and one it rejects fails with the same words.
  if (train && micro && gas) {
  } else if (train && micro) {
    gas = *train / *micro / ws;
  } else if (train && gas) {
    micro = *train / ws / *gas;
  } else if (micro && gas) {
    train = *micro * *gas * ws;
  } else if (train) {
    gas = 1;
    micro = *train / ws;
  } else if (micro) {
    train = *micro * ws;
    gas = 1;
  } else {
    fail("Either train_batch_size or train_micro_batch_size_per_gpu needs to be provided");
  }
  if (*train <= 0) fail(cat("Train batch size: ", *train, " has to be greater than 0"));
  if (*micro <= 0) fail(cat("Micro batch size per gpu: ", *micro, " has to be greater than 0"));
  if (*gas <= 0) fail(cat("Gradient accumulation steps: ", *gas, " has to be greater than 0"));
  if (*train != *micro * *gas * ws) {
    fail(cat("Check batch related parameters. train_batch_size is not equal to micro_batch_per_gpu * "
             "gradient_acc_step * world_size ",
             *train, " != ", *micro, " * ", *gas, " * ", ws));
  }
  return BatchSizes{*train, *micro, *gas};
}

}  // namespace deepspeed::config
