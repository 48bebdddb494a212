#include "datasets.h"

#include <ATen/ATen.h>
#include <zlib.h>

#include <array>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "deepspeed/util/error.h"

namespace deepspeed::examples {

namespace fs = std::filesystem;

namespace {

constexpr std::uint32_t kIdxImagesMagic = 0x00000803;  // unsigned bytes, 3 dimensions
constexpr std::uint32_t kIdxLabelsMagic = 0x00000801;  // unsigned bytes, 1 dimension
constexpr std::uint8_t kNumClasses = 10;
constexpr std::size_t kCifarImageBytes = 3 * 32 * 32;
constexpr std::size_t kCifarRecordBytes = 1 + kCifarImageBytes;
// A header promising more than this is corrupt; refusing it avoids a giant allocation before the
// inevitable "truncated" error.
constexpr std::uint64_t kMaxIdxPayload = std::uint64_t{1} << 32;

std::string hex32(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

// Images as the tutorials feed them: ToTensor's x/255 then Normalize(0.5, 0.5), in the same float32 steps
// so values match torchvision's bit for bit.
at::Tensor normalize_images(const at::Tensor& bytes) {
  return bytes.to(at::kFloat).div_(255).sub_(0.5).div_(0.5);
}

void check_labels(const at::Tensor& labels, const fs::path& file) {
  const std::uint8_t* p = labels.data_ptr<std::uint8_t>();
  for (int64_t i = 0; i < labels.numel(); ++i) {
    if (p[i] >= kNumClasses) {
      throw UsageError(file.string() + ": label " + std::to_string(p[i]) + " of sample " + std::to_string(i) +
                       " is not a class id 0..9");
    }
  }
}

// zlib's gz* functions read gzip and plain files alike, so one reader serves both.
class GzFile {
 public:
  explicit GzFile(fs::path path) : path_(std::move(path)), file_(gzopen(path_.c_str(), "rb")) {
    if (file_ == nullptr) throw UsageError(path_.string() + ": cannot open for reading");
  }
  ~GzFile() { gzclose(file_); }
  GzFile(const GzFile&) = delete;
  GzFile& operator=(const GzFile&) = delete;

  void read_exact(void* dst, std::size_t n, const std::string& what) {
    auto* out = static_cast<unsigned char*>(dst);
    std::size_t done = 0;
    while (done < n) {
      const auto chunk = static_cast<unsigned>(std::min<std::size_t>(n - done, INT_MAX / 2));
      const int got = gzread(file_, out + done, chunk);
      if (got < 0) fail_corrupt();
      if (got == 0) {
        int code = Z_OK;
        gzerror(file_, &code);
        const std::string why = code == Z_BUF_ERROR ? " (gzip stream cut short)" : "";
        throw UsageError(path_.string() + ": truncated: expected " + std::to_string(n) + " bytes of " + what +
                         ", got " + std::to_string(done) + why);
      }
      done += static_cast<std::size_t>(got);
    }
  }

  std::uint32_t read_be32(const std::string& what) {
    std::array<unsigned char, 4> b{};
    read_exact(b.data(), b.size(), what);
    return (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) | b[3];
  }

  void expect_end() {
    unsigned char extra = 0;
    const int got = gzread(file_, &extra, 1);
    if (got < 0) fail_corrupt();
    if (got > 0) throw UsageError(path_.string() + ": unexpected bytes after the last record");
  }

  const fs::path& path() const { return path_; }

 private:
  [[noreturn]] void fail_corrupt() {
    int code = Z_OK;
    const char* msg = gzerror(file_, &code);
    throw UsageError(path_.string() + ": corrupt gzip data (" + (msg ? msg : "unknown zlib error") + ")");
  }

  fs::path path_;
  gzFile file_;
};

fs::path find_idx_file(const fs::path& dir, const std::string& base) {
  for (const fs::path& candidate : {dir / base, dir / (base + ".gz")}) {
    if (fs::is_regular_file(candidate)) return candidate;
  }
  throw UsageError("Fashion-MNIST: neither " + (dir / base).string() + " nor " + (dir / (base + ".gz")).string() +
                   " exists (expected an IDX file, raw or gzipped)");
}

void expect_magic(GzFile& f, std::uint32_t expected, const char* kind) {
  const std::uint32_t magic = f.read_be32("header");
  if (magic != expected) {
    throw UsageError(f.path().string() + ": bad magic number " + hex32(magic) + ", expected " + hex32(expected) +
                     " (" + kind + ")");
  }
}

at::Tensor read_idx_images(const fs::path& path) {
  GzFile f(path);
  expect_magic(f, kIdxImagesMagic, "IDX unsigned-byte images");
  const std::uint64_t n = f.read_be32("header");
  const std::uint64_t rows = f.read_be32("header");
  const std::uint64_t cols = f.read_be32("header");
  if (rows == 0 || cols == 0 || n * rows * cols > kMaxIdxPayload) {
    throw UsageError(path.string() + ": implausible image dimensions " + std::to_string(n) + "x" +
                     std::to_string(rows) + "x" + std::to_string(cols));
  }
  at::Tensor bytes = at::empty({static_cast<int64_t>(n), 1, static_cast<int64_t>(rows), static_cast<int64_t>(cols)},
                               at::kByte);
  f.read_exact(bytes.data_ptr(), n * rows * cols, "pixel data");
  f.expect_end();
  return bytes;
}

at::Tensor read_idx_labels(const fs::path& path) {
  GzFile f(path);
  expect_magic(f, kIdxLabelsMagic, "IDX unsigned-byte labels");
  const std::uint64_t n = f.read_be32("header");
  at::Tensor labels = at::empty({static_cast<int64_t>(n)}, at::kByte);
  f.read_exact(labels.data_ptr(), n, "labels");
  f.expect_end();
  check_labels(labels, path);
  return labels;
}

}  // namespace

std::shared_ptr<data::TensorDataset> load_fashion_mnist(const fs::path& dir, bool train) {
  const std::string prefix = train ? "train" : "t10k";
  const fs::path images_path = find_idx_file(dir, prefix + "-images-idx3-ubyte");
  const fs::path labels_path = find_idx_file(dir, prefix + "-labels-idx1-ubyte");
  at::Tensor images = read_idx_images(images_path);
  at::Tensor labels = read_idx_labels(labels_path);
  if (images.size(0) != labels.size(0)) {
    throw UsageError(images_path.string() + ": holds " + std::to_string(images.size(0)) + " images but " +
                     labels_path.string() + " holds " + std::to_string(labels.size(0)) + " labels");
  }
  return std::make_shared<data::TensorDataset>(normalize_images(images), labels.to(at::kLong));
}

std::shared_ptr<data::TensorDataset> load_cifar10(const fs::path& dir, bool train) {
  std::vector<std::string> names;
  if (train) {
    for (int i = 1; i <= 5; ++i) names.push_back("data_batch_" + std::to_string(i) + ".bin");
  } else {
    names.push_back("test_batch.bin");
  }
  // Accept the folder the tarball was extracted into as well as the batches folder itself.
  fs::path root = dir;
  if (!fs::exists(root / names.front()) && fs::is_directory(root / "cifar-10-batches-bin")) {
    root /= "cifar-10-batches-bin";
  }

  std::vector<fs::path> paths;
  std::vector<std::size_t> records;
  std::size_t total = 0;
  for (const auto& name : names) {
    const fs::path path = root / name;
    std::error_code ec;
    const std::uintmax_t bytes = fs::file_size(path, ec);
    if (ec) throw UsageError(path.string() + ": missing or unreadable (expected a CIFAR-10 binary batch file)");
    if (bytes == 0 || bytes % kCifarRecordBytes != 0) {
      throw UsageError(path.string() + ": size " + std::to_string(bytes) + " is not a whole, non-zero number of " +
                       std::to_string(kCifarRecordBytes) + "-byte CIFAR-10 records (truncated?)");
    }
    paths.push_back(path);
    records.push_back(bytes / kCifarRecordBytes);
    total += records.back();
  }

  at::Tensor raw = at::empty({static_cast<int64_t>(total), static_cast<int64_t>(kCifarRecordBytes)}, at::kByte);
  auto* out = static_cast<char*>(raw.data_ptr());
  std::size_t offset = 0;
  for (std::size_t f = 0; f < paths.size(); ++f) {
    std::ifstream in(paths[f], std::ios::binary);
    const auto want = static_cast<std::streamsize>(records[f] * kCifarRecordBytes);
    if (!in.read(out + offset * kCifarRecordBytes, want)) {
      throw UsageError(paths[f].string() + ": read " + std::to_string(in.gcount()) + " of " + std::to_string(want) +
                       " bytes");
    }
    const at::Tensor file_records = raw.narrow(0, static_cast<int64_t>(offset), static_cast<int64_t>(records[f]));
    check_labels(file_records.select(1, 0).contiguous(), paths[f]);
    offset += records[f];
  }

  at::Tensor labels = raw.select(1, 0).to(at::kLong);
  at::Tensor pixels = raw.narrow(1, 1, kCifarImageBytes).reshape({static_cast<int64_t>(total), 3, 32, 32});
  return std::make_shared<data::TensorDataset>(normalize_images(pixels), labels);
}

}  // namespace deepspeed::examples
