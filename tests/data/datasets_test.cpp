#include "common/datasets.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/data/datasets/mnist.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "deepspeed/util/error.h"

namespace deepspeed::examples {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;

void append_be32(Bytes& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
}

Bytes idx_images(std::uint32_t n, std::uint32_t rows, std::uint32_t cols, std::uint32_t magic = 0x803) {
  Bytes out;
  append_be32(out, magic);
  append_be32(out, n);
  append_be32(out, rows);
  append_be32(out, cols);
  for (std::uint32_t i = 0; i < n * rows * cols; ++i) out.push_back(static_cast<std::uint8_t>(i * 7));
  return out;
}

Bytes idx_labels(const Bytes& labels, std::uint32_t magic = 0x801) {
  Bytes out;
  append_be32(out, magic);
  append_be32(out, static_cast<std::uint32_t>(labels.size()));
  out.insert(out.end(), labels.begin(), labels.end());
  return out;
}

// The tutorial normalization in the same float steps, for exact comparison.
float normalized(std::uint8_t byte) { return (static_cast<float>(byte) / 255.f - 0.5f) / 0.5f; }

// Not fs::remove_all: the PyTorch wheel's libtorch.so exports its own copy of it (pytorch/pytorch#133437),
// which the dynamic linker binds instead of libstdc++'s and which crashes on non-empty directories.
void remove_tree(const fs::path& p) {
  if (fs::is_directory(fs::symlink_status(p))) {
    for (const auto& entry : fs::directory_iterator(p)) remove_tree(entry.path());
  }
  std::error_code ignored;
  fs::remove(p, ignored);
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const UsageError& e) {
    return e.what();
  }
  return "<no UsageError>";
}

class ReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("ds_data_" + std::to_string(::getpid()) + "_" + info->test_suite_name() + "_" + info->name());
    remove_tree(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { remove_tree(dir_); }

  void write_raw(const std::string& name, const Bytes& bytes) {
    std::ofstream out(dir_ / name, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  void write_gz(const std::string& name, const Bytes& bytes) {
    gzFile f = gzopen((dir_ / name).c_str(), "wb");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
    gzclose(f);
  }

  fs::path dir_;
};

TEST_F(ReaderTest, FashionMnistRawAndGzipAgree) {
  const Bytes labels{3, 0, 9};
  write_raw("t10k-images-idx3-ubyte", idx_images(3, 28, 28));
  write_raw("t10k-labels-idx1-ubyte", idx_labels(labels));
  write_gz("train-images-idx3-ubyte.gz", idx_images(3, 28, 28));
  write_gz("train-labels-idx1-ubyte.gz", idx_labels(labels));

  auto test = load_fashion_mnist(dir_, false);
  auto train = load_fashion_mnist(dir_, true);
  for (const auto& ds : {test, train}) {
    ASSERT_EQ(ds->size(), 3u);
    EXPECT_EQ(ds->data().sizes(), (std::vector<int64_t>{3, 1, 28, 28}));
    EXPECT_EQ(ds->data().scalar_type(), at::kFloat);
    EXPECT_EQ(ds->targets().scalar_type(), at::kLong);
    EXPECT_TRUE(at::equal(ds->targets(), at::tensor({3, 0, 9}, at::kLong)));
    // Pixel k of the file is byte k * 7 (mod 256); check a few across images and rows.
    for (std::uint32_t k : {0u, 1u, 29u, 784u + 5u, 2u * 784u + 783u}) {
      const int64_t img = k / 784, row = (k % 784) / 28, col = k % 28;
      EXPECT_EQ(ds->data()[img][0][row][col].item<float>(), normalized(static_cast<std::uint8_t>(k * 7))) << k;
    }
  }
  EXPECT_TRUE(at::equal(test->data(), train->data()));
  EXPECT_FLOAT_EQ(normalized(0), -1.f);
  EXPECT_FLOAT_EQ(normalized(255), 1.f);
}

TEST_F(ReaderTest, FashionMnistErrorsNameTheFile) {
  // Missing files.
  EXPECT_NE(message_of([&] { load_fashion_mnist(dir_, true); }).find("train-images-idx3-ubyte.gz"), std::string::npos);

  // Bad magic: images and labels swapped.
  write_gz("train-images-idx3-ubyte.gz", idx_labels({1, 2}));
  write_gz("train-labels-idx1-ubyte.gz", idx_labels({1, 2}));
  std::string msg = message_of([&] { load_fashion_mnist(dir_, true); });
  EXPECT_NE(msg.find("train-images-idx3-ubyte.gz"), std::string::npos) << msg;
  EXPECT_NE(msg.find("magic"), std::string::npos) << msg;

  // Truncated raw pixel data.
  Bytes images = idx_images(2, 4, 4);
  images.resize(images.size() - 3);
  write_raw("t10k-images-idx3-ubyte", images);
  write_raw("t10k-labels-idx1-ubyte", idx_labels({1, 2}));
  msg = message_of([&] { load_fashion_mnist(dir_, false); });
  EXPECT_NE(msg.find("t10k-images-idx3-ubyte"), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;

  // Truncated gzip stream (the compressed file cut in half).
  write_gz("train-images-idx3-ubyte.gz", idx_images(50, 28, 28));
  fs::resize_file(dir_ / "train-images-idx3-ubyte.gz", fs::file_size(dir_ / "train-images-idx3-ubyte.gz") / 2);
  msg = message_of([&] { load_fashion_mnist(dir_, true); });
  EXPECT_NE(msg.find("train-images-idx3-ubyte.gz"), std::string::npos) << msg;

  // Counts that disagree, a label out of range, trailing bytes.
  write_raw("t10k-images-idx3-ubyte", idx_images(2, 4, 4));
  write_raw("t10k-labels-idx1-ubyte", idx_labels({1, 2, 3}));
  msg = message_of([&] { load_fashion_mnist(dir_, false); });
  EXPECT_NE(msg.find("2 images"), std::string::npos) << msg;
  EXPECT_NE(msg.find("t10k-labels-idx1-ubyte"), std::string::npos) << msg;
  write_raw("t10k-labels-idx1-ubyte", idx_labels({1, 12}));
  msg = message_of([&] { load_fashion_mnist(dir_, false); });
  EXPECT_NE(msg.find("label 12"), std::string::npos) << msg;
  Bytes trailing = idx_labels({1, 2});
  trailing.push_back(0);
  write_raw("t10k-labels-idx1-ubyte", trailing);
  msg = message_of([&] { load_fashion_mnist(dir_, false); });
  EXPECT_NE(msg.find("after the last record"), std::string::npos) << msg;
}

Bytes cifar_records(std::uint32_t n, std::uint8_t first_label) {
  Bytes out;
  for (std::uint32_t r = 0; r < n; ++r) {
    out.push_back(static_cast<std::uint8_t>((first_label + r) % 10));
    for (std::uint32_t p = 0; p < 3072; ++p) out.push_back(static_cast<std::uint8_t>(p + 13 * r));
  }
  return out;
}

TEST_F(ReaderTest, Cifar10TrainAndTest) {
  for (int b = 1; b <= 5; ++b) write_raw("data_batch_" + std::to_string(b) + ".bin", cifar_records(2, 2 * (b - 1)));
  write_raw("test_batch.bin", cifar_records(3, 7));

  auto train = load_cifar10(dir_, true);
  ASSERT_EQ(train->size(), 10u);
  EXPECT_EQ(train->data().sizes(), (std::vector<int64_t>{10, 3, 32, 32}));
  EXPECT_TRUE(at::equal(train->targets(), at::arange(10, at::kLong)));
  // Record r of a file: byte p of the image is p + 13 r; channel-major, so (c, h, w) is byte c*1024 + h*32 + w.
  for (auto [c, h, w] : {std::tuple{0, 0, 0}, {1, 2, 3}, {2, 31, 31}}) {
    const std::uint32_t p = c * 1024 + h * 32 + w;
    EXPECT_EQ(train->data()[3][c][h][w].item<float>(), normalized(static_cast<std::uint8_t>(p + 13))) << p;
  }

  auto test = load_cifar10(dir_, false);
  ASSERT_EQ(test->size(), 3u);
  EXPECT_TRUE(at::equal(test->targets(), at::tensor({7, 8, 9}, at::kLong)));
  EXPECT_LE(test->data().max().item<float>(), 1.f);
  EXPECT_GE(test->data().min().item<float>(), -1.f);
}

TEST_F(ReaderTest, Cifar10AcceptsTheTarballFolder) {
  fs::create_directories(dir_ / "cifar-10-batches-bin");
  std::ofstream(dir_ / "cifar-10-batches-bin" / "test_batch.bin", std::ios::binary)
      .write(reinterpret_cast<const char*>(cifar_records(1, 4).data()), 3073);
  EXPECT_EQ(load_cifar10(dir_, false)->size(), 1u);
}

TEST_F(ReaderTest, Cifar10ErrorsNameTheFile) {
  std::string msg = message_of([&] { load_cifar10(dir_, false); });
  EXPECT_NE(msg.find("test_batch.bin"), std::string::npos) << msg;

  for (int b = 1; b <= 5; ++b) write_raw("data_batch_" + std::to_string(b) + ".bin", cifar_records(1, 0));
  Bytes short_file = cifar_records(2, 0);
  short_file.resize(short_file.size() - 100);
  write_raw("data_batch_4.bin", short_file);
  msg = message_of([&] { load_cifar10(dir_, true); });
  EXPECT_NE(msg.find("data_batch_4.bin"), std::string::npos) << msg;
  EXPECT_NE(msg.find("3073"), std::string::npos) << msg;

  fs::remove(dir_ / "data_batch_4.bin");
  msg = message_of([&] { load_cifar10(dir_, true); });
  EXPECT_NE(msg.find("data_batch_4.bin"), std::string::npos) << msg;

  Bytes bad_label = cifar_records(1, 0);
  bad_label[0] = 200;
  write_raw("test_batch.bin", bad_label);
  msg = message_of([&] { load_cifar10(dir_, false); });
  EXPECT_NE(msg.find("label 200"), std::string::npos) << msg;
}

// The real data from Debian's dataset-fashion-mnist package, when installed.
TEST(FashionMnistReal, LoadsTheTestSplit) {
  const fs::path dir = kFashionMnistDir;
  if (!fs::exists(dir / "t10k-images-idx3-ubyte.gz") && !fs::exists(dir / "t10k-images-idx3-ubyte")) {
    GTEST_SKIP() << "Fashion-MNIST not installed at " << dir;
  }
  auto ds = load_fashion_mnist(dir, false);
  ASSERT_EQ(ds->size(), 10000u);
  EXPECT_EQ(ds->data().sizes(), (std::vector<int64_t>{10000, 1, 28, 28}));
  // The test split is balanced: 1000 of each class.
  EXPECT_TRUE(at::equal(at::bincount(ds->targets()), at::full({10}, 1000, at::kLong)));
  EXPECT_EQ(ds->data().min().item<float>(), -1.f);
  EXPECT_EQ(ds->data().max().item<float>(), 1.f);

  // Cross-check against LibTorch's own MNIST reader (raw files only, pixels / 255), fed the same bytes.
  const fs::path raw = fs::temp_directory_path() / ("ds_data_mnist_" + std::to_string(::getpid()));
  fs::create_directories(raw);
  for (const std::string name : {"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"}) {
    gzFile in = gzopen((dir / (name + ".gz")).c_str(), "rb");
    if (in == nullptr) in = gzopen((dir / name).c_str(), "rb");
    ASSERT_NE(in, nullptr);
    std::ofstream out(raw / name, std::ios::binary);
    char buf[1 << 16];
    for (int got; (got = gzread(in, buf, sizeof buf)) > 0;) out.write(buf, got);
    gzclose(in);
  }
  torch::data::datasets::MNIST mnist(raw.string(), torch::data::datasets::MNIST::Mode::kTest);
  remove_tree(raw);
  EXPECT_TRUE(at::equal(mnist.targets(), ds->targets()));
  EXPECT_TRUE(at::equal(mnist.images().sub(0.5).div(0.5), ds->data()));
}

}  // namespace
}  // namespace deepspeed::examples
