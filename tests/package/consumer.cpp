// Trains a linear model for a few steps through the installed deepspeed.cpp package.
#include <cstdio>

#include <torch/nn/functional/loss.h>
#include <torch/nn/modules/linear.h>

#include "deepspeed/deepspeed.h"

int main(int argc, char** argv) {
  CLI::App app{"consumer"};
  auto ds_args = deepspeed::add_config_arguments(app);
  deepspeed::parse_arguments(app, argc, argv);
  torch::nn::Linear model(4, 1);
  deepspeed::InitializeOptions options;
  options.config = deepspeed::config::Json{{"train_batch_size", 8},
                                           {"optimizer", {{"type", "SGD"}, {"params", {{"lr", 0.1}}}}}};
  auto [engine, optimizer, loader, scheduler] = deepspeed::initialize(ds_args, model, model->parameters(), nullptr, options);
  const auto x = torch::randn({8, 4});
  const auto y = x.sum(1, true);
  double first = 0, last = 0;
  for (int step = 0; step < 50; ++step) {
    auto loss = torch::nn::functional::mse_loss(engine(x), y);
    if (step == 0) first = loss.item<double>();
    last = loss.item<double>();
    engine.backward(loss);
    engine.step();
  }
  std::printf("consumer: loss %.4f -> %.4f\n", first, last);
  return last < first / 10 ? 0 : 1;
}
