#pragma once
// The tutorial's CIFAR-10 network (PyTorch's "Training a classifier"), with the input channels and image
// size as parameters so the same network trains on Fashion-MNIST (1×28×28) and CIFAR-10 (3×32×32).
#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/pooling.h>
#include <torch/nn/functional/activation.h>

struct NetImpl : torch::nn::Module {
  NetImpl(int64_t in_channels = 3, int64_t image_size = 32)
      : conv1(register_module("conv1", torch::nn::Conv2d(in_channels, 6, 5))),
        pool(register_module("pool", torch::nn::MaxPool2d(2))),
        conv2(register_module("conv2", torch::nn::Conv2d(6, 16, 5))),
        flat_features(16 * ((image_size - 4) / 2 - 4) / 2 * ((image_size - 4) / 2 - 4) / 2),
        fc1(register_module("fc1", torch::nn::Linear(flat_features, 120))),
        fc2(register_module("fc2", torch::nn::Linear(120, 84))),
        fc3(register_module("fc3", torch::nn::Linear(84, 10))) {}

  torch::Tensor forward(torch::Tensor x) {
    x = pool(torch::relu(conv1(x)));
    x = pool(torch::relu(conv2(x)));
    x = x.flatten(1);
    x = torch::relu(fc1(x));
    x = torch::relu(fc2(x));
    return fc3(x);
  }

  torch::nn::Conv2d conv1;
  torch::nn::MaxPool2d pool;
  torch::nn::Conv2d conv2;
  int64_t flat_features;
  torch::nn::Linear fc1, fc2, fc3;
};
TORCH_MODULE(Net);
