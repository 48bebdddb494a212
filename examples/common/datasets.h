#pragma once
/// \file
/// Readers for the datasets the examples train on, loaded whole into memory as TensorDatasets.
/// Images are float32 normalized as in the DeepSpeed/PyTorch tutorials (ToTensor then
/// Normalize(0.5, 0.5)): (x / 255 - 0.5) / 0.5, i.e. in [-1, 1]. Labels are int64 class ids 0..9.

#include <filesystem>
#include <memory>

#include "deepspeed/data/dataset.h"

namespace deepspeed::examples {

/// Where Debian's dataset-fashion-mnist package installs the gzipped IDX files.
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

/// Fashion-MNIST (or MNIST: the same IDX layout) from `dir`: train-images-idx3-ubyte and
/// train-labels-idx1-ubyte for train (60000 images), t10k-* otherwise (10000), each raw or with a .gz
/// suffix (the raw name is tried first). Returns data [N, 1, rows, cols] float (28x28 for Fashion-MNIST)
/// and targets [N] int64. Throws UsageError, naming the file, if a file is missing, has the wrong magic
/// number, is truncated or has trailing bytes, has a label above 9, or the two files' counts differ.
std::shared_ptr<data::TensorDataset> load_fashion_mnist(const std::filesystem::path& dir = kFashionMnistDir,
                                                        bool train = true);

/// CIFAR-10 from the official binary release: `dir` holds data_batch_1.bin .. data_batch_5.bin (train) or
/// test_batch.bin (test), or is the folder above them (cifar-10-batches-bin/ from the tarball). Records
/// are 1 label byte then 3072 pixel bytes, channel-major (R, G, B planes of 32x32). Returns data
/// [N, 3, 32, 32] float and targets [N] int64, in file order. Throws UsageError, naming the file, if one is
/// missing or unreadable, empty, not a whole number of 3073-byte records, or holds a label above 9.
std::shared_ptr<data::TensorDataset> load_cifar10(const std::filesystem::path& dir, bool train = true);

}  // namespace deepspeed::examples
