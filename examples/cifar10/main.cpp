// The tutorial, in C++: train the CIFAR network data-parallel with deepspeed.cpp.
//
//   deepspeed --num_gpus 2 ./build/examples/cifar10 --deepspeed_config examples/cifar10/ds_config.json
//
// By default it trains on Fashion-MNIST from Debian's dataset-fashion-mnist package; `--dataset cifar10
// --data-dir DIR` reads the official CIFAR-10 binary files instead.
#include <cstdio>

#include <ATen/ATen.h>
#include <torch/nn/functional/loss.h>

#include "deepspeed/deepspeed.h"
#include "examples/cifar10/net.h"
#include "common/datasets.h"

namespace {

struct Options {
  int batch_size = 32;     // kept for parity with the tutorial's flags; the batch comes from ds_config.json
  int epochs = 30;
  int local_rank = -1;
  int log_interval = 2000;
  std::string dataset = "fashion-mnist";
  std::string data_dir;
  std::int64_t max_steps = -1;  // stop after this many micro-steps (tests, smoke runs)
};

// Test accuracy over this rank's shard of the test set, summed across ranks.
double evaluate(deepspeed::Engine& engine, const std::shared_ptr<deepspeed::data::TensorDataset>& test_set) {
  engine.eval();
  at::NoGradGuard no_grad;
  const auto comm = engine.communicator();
  const std::int64_t n = test_set->size();
  const std::int64_t begin = n * comm->rank() / comm->world_size();
  const std::int64_t end = n * (comm->rank() + 1) / comm->world_size();
  double correct = 0;
  for (std::int64_t start = begin; start < end; start += 1000) {
    const std::int64_t stop = std::min(end, start + 1000);
    auto images = test_set->data().slice(0, start, stop).to(engine.device());
    auto labels = test_set->targets().slice(0, start, stop).to(engine.device());
    correct += engine(images).argmax(1).eq(labels).sum().item<double>();
  }
  correct = comm->all_reduce_scalar(correct, deepspeed::comm::ReduceOp::kSum);
  engine.train();
  return correct / static_cast<double>(n);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"CIFAR"};
  Options opt;
  app.add_option("-b,--batch_size", opt.batch_size, "mini-batch size (default: 32)");
  app.add_option("-e,--epochs", opt.epochs, "number of total epochs (default: 30)");
  app.add_option("--local_rank", opt.local_rank, "local rank passed from distributed launcher");
  app.add_option("--log-interval", opt.log_interval, "output logging information at a given interval");
  app.add_option("--dataset", opt.dataset, "fashion-mnist (default) or cifar10")
      ->check(CLI::IsMember({"fashion-mnist", "cifar10"}));
  app.add_option("--data-dir", opt.data_dir, "dataset directory (default: Debian's dataset-fashion-mnist)");
  app.add_option("--max-steps", opt.max_steps, "stop after this many micro-steps (default: all epochs)");
  auto ds_args = deepspeed::add_config_arguments(app);
  deepspeed::parse_arguments(app, argc, argv);

  const bool cifar = opt.dataset == "cifar10";
  if (opt.data_dir.empty()) opt.data_dir = cifar ? "data/cifar-10-batches-bin" : deepspeed::examples::kFashionMnistDir;
  auto trainset = cifar ? deepspeed::examples::load_cifar10(opt.data_dir, true) : deepspeed::examples::load_fashion_mnist(opt.data_dir, true);
  auto testset = cifar ? deepspeed::examples::load_cifar10(opt.data_dir, false) : deepspeed::examples::load_fashion_mnist(opt.data_dir, false);

  torch::manual_seed(1234);
  Net net(cifar ? 3 : 1, cifar ? 32 : 28);
  std::vector<at::Tensor> parameters;
  for (auto& p : net->parameters()) {
    if (p.requires_grad()) parameters.push_back(p);
  }
  auto [engine, optimizer, trainloader, scheduler] = deepspeed::initialize(ds_args, net, parameters, trainset);
  const bool rank0 = engine.global_rank() == 0;

  std::int64_t micro_steps = 0;
  const auto done = [&] { return opt.max_steps >= 0 && micro_steps >= opt.max_steps; };
  for (int epoch = 0; epoch < opt.epochs && !done(); ++epoch) {
    double running_loss = 0.0;
    std::int64_t i = 0;
    for (auto& batch : *trainloader) {
      if (done()) break;
      ++micro_steps;
      auto inputs = batch.data.to(engine.device());
      auto labels = batch.target.to(engine.device());
      auto outputs = engine(inputs);
      auto loss = torch::nn::functional::cross_entropy(outputs, labels);
      engine.backward(loss);
      engine.step();
      running_loss += loss.item<double>();
      if (i % opt.log_interval == opt.log_interval - 1 && rank0) {
        std::printf("[%d, %5lld] loss: %.3f\n", epoch + 1, static_cast<long long>(i + 1), running_loss / opt.log_interval);
        std::fflush(stdout);
        running_loss = 0.0;
      }
      ++i;
    }
  }
  const double accuracy = evaluate(engine, testset);
  if (rank0) {
    std::printf("Accuracy of the network on the %lld test images: %.2f %%\n",
                static_cast<long long>(testset->size()), 100.0 * accuracy);
  }
  return 0;
}
