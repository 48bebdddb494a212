#include "examples/gpt2/data.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <ATen/ops/empty.h>

#include "deepspeed/util/error.h"
#include "deepspeed/util/strings.h"

namespace deepspeed::examples::gpt2 {
namespace {

using util::cat;

constexpr std::int32_t kLlmcMagic = 20240520;
constexpr std::size_t kLlmcHeaderBytes = 256 * sizeof(std::int32_t);

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// SplitMix64: a well-mixed, stateless map from (seed, index) to a window offset.
std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

std::vector<std::string> default_text_candidates() {
  return {"/usr/share/perl/5.36.0/pod/perldiag.pod", "/usr/share/common-licenses/GPL-3"};
}

std::string default_text_file() {
  for (const auto& path : default_text_candidates()) {
    if (::access(path.c_str(), R_OK) == 0) return path;
  }
  return "";
}

TokenFormat parse_token_format(const std::string& name) {
  if (name == "auto") return TokenFormat::kAuto;
  if (name == "llmc") return TokenFormat::kLlmc;
  if (name == "uint16") return TokenFormat::kRaw16;
  if (name == "bytes") return TokenFormat::kBytes;
  throw UsageError(cat("unknown token format \"", name, "\" (expected auto, llmc, uint16 or bytes)"));
}

const char* token_format_name(TokenFormat format) {
  switch (format) {
    case TokenFormat::kAuto: return "auto";
    case TokenFormat::kLlmc: return "llmc";
    case TokenFormat::kRaw16: return "uint16";
    case TokenFormat::kBytes: return "bytes";
  }
  return "?";
}

std::shared_ptr<TokenFile> TokenFile::open(const std::string& path, TokenFormat format) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw UsageError(cat("cannot read token file '", path, "': ", std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_size <= 0) {
    ::close(fd);
    throw UsageError(cat("token file '", path, "' is empty or unreadable"));
  }
  std::shared_ptr<TokenFile> file(new TokenFile());
  file->path_ = path;
  file->map_bytes_ = static_cast<std::size_t>(st.st_size);
  void* map = ::mmap(nullptr, file->map_bytes_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);  // the mapping keeps the file
  if (map == MAP_FAILED) throw UsageError(cat("cannot map token file '", path, "': ", std::strerror(errno)));
  file->map_ = map;
  // Windows are read at scattered offsets; read-ahead would mostly fetch pages no one asked for.
  ::madvise(map, file->map_bytes_, MADV_RANDOM);

  const auto* bytes = static_cast<const unsigned char*>(map);
  std::int32_t header[3] = {0, 0, 0};
  if (file->map_bytes_ >= kLlmcHeaderBytes) std::memcpy(header, bytes, sizeof(header));
  if (format == TokenFormat::kAuto) {
    format = header[0] == kLlmcMagic ? TokenFormat::kLlmc
             : ends_with(path, ".bin") ? TokenFormat::kRaw16
                                       : TokenFormat::kBytes;
  }
  file->format_ = format;
  std::size_t offset = 0;
  switch (format) {
    case TokenFormat::kLlmc: {
      if (header[0] != kLlmcMagic) {
        throw UsageError(cat("'", path, "' is not an llm.c token file (magic ", header[0], ", expected ", kLlmcMagic, ")"));
      }
      if (header[1] != 1 && header[1] != 2) {
        throw UsageError(cat("'", path, "': unsupported llm.c token file version ", header[1], " (1: uint16, 2: uint32)"));
      }
      file->width_ = header[1] == 1 ? 2 : 4;
      offset = kLlmcHeaderBytes;
      const auto expected = offset + static_cast<std::size_t>(header[2]) * static_cast<std::size_t>(file->width_);
      if (header[2] <= 0 || expected != file->map_bytes_) {
        throw UsageError(cat("'", path, "': the llm.c header counts ", header[2], " tokens, but the file holds ",
                             (file->map_bytes_ - std::min(file->map_bytes_, offset)) / file->width_));
      }
      break;
    }
    case TokenFormat::kRaw16:
      file->width_ = 2;
      if (file->map_bytes_ % 2 != 0) {
        throw UsageError(cat("'", path, "' has an odd number of bytes; not a stream of uint16 tokens"));
      }
      break;
    case TokenFormat::kBytes:
    case TokenFormat::kAuto:
      file->width_ = 1;
      break;
  }
  file->tokens_ = bytes + offset;
  file->num_tokens_ = static_cast<std::int64_t>((file->map_bytes_ - offset) / file->width_);
  return file;
}

TokenFile::~TokenFile() {
  if (map_ != nullptr) ::munmap(map_, map_bytes_);
}

void TokenFile::read(std::int64_t offset, std::span<std::int64_t> out) const {
  const auto count = static_cast<std::int64_t>(out.size());
  if (offset < 0 || offset + count > num_tokens_) {
    throw std::out_of_range(cat("tokens [", offset, ", ", offset + count, ") outside '", path_, "' (", num_tokens_,
                                " tokens)"));
  }
  const unsigned char* p = tokens_ + offset * width_;
  // Token files are little-endian, as is every machine this runs on; memcpy sidesteps unaligned loads.
  for (std::int64_t i = 0; i < count; ++i, p += width_) {
    if (width_ == 1) {
      out[i] = *p;
    } else if (width_ == 2) {
      std::uint16_t v;
      std::memcpy(&v, p, 2);
      out[i] = v;
    } else {
      std::uint32_t v;
      std::memcpy(&v, p, 4);
      out[i] = v;
    }
  }
}

TokenWindows::TokenWindows(std::shared_ptr<TokenFile> file, std::int64_t block_size, Sampling sampling,
                           std::int64_t num_windows, std::uint64_t seed, std::int64_t vocab_size)
    : file_(std::move(file)), block_size_(block_size), sampling_(sampling), seed_(seed), vocab_size_(vocab_size) {
  if (!file_) throw UsageError("TokenWindows: no token file");
  if (block_size_ <= 0) throw UsageError("TokenWindows: block_size must be positive");
  if (file_->size() < block_size_ + 1) {
    throw UsageError(cat("'", file_->path(), "' holds ", file_->size(), " tokens, fewer than one window of ",
                         block_size_ + 1));
  }
  const std::int64_t sequential = (file_->size() - 1) / block_size_;
  num_windows_ = num_windows > 0 ? num_windows : sequential;
  if (sampling_ == Sampling::kSequential && num_windows_ > sequential) {
    throw UsageError(cat("TokenWindows: ", num_windows_, " sequential windows of ", block_size_, " do not fit in ",
                         file_->size(), " tokens"));
  }
}

std::int64_t TokenWindows::window_start(std::size_t index) const {
  if (index >= size()) throw std::out_of_range(cat("window ", index, " >= ", size()));
  if (sampling_ == Sampling::kSequential) return static_cast<std::int64_t>(index) * block_size_;
  const auto starts = static_cast<std::uint64_t>(file_->size() - block_size_);  // last start: size - (T + 1)
  return static_cast<std::int64_t>(mix(seed_ * 0x100000001b3ULL ^ mix(index)) % starts);
}

data::Example TokenWindows::get(std::size_t index) {
  const std::size_t one[] = {index};
  auto batch = get_batch(one);
  return data::Example(batch.data[0], batch.target[0]);
}

data::Example TokenWindows::get_batch(std::span<const std::size_t> indices) {
  if (indices.empty()) throw UsageError("TokenWindows::get_batch: no indices");
  const auto b = static_cast<std::int64_t>(indices.size());
  at::Tensor windows = at::empty({b, block_size_ + 1}, at::TensorOptions().dtype(at::kLong));
  auto* out = windows.data_ptr<std::int64_t>();
  for (std::int64_t i = 0; i < b; ++i) {
    file_->read(window_start(indices[i]), std::span<std::int64_t>(out + i * (block_size_ + 1), block_size_ + 1));
  }
  if (vocab_size_ > 0) {
    const std::int64_t* begin = out;
    const std::int64_t* end = out + windows.numel();
    if (const auto* bad = std::find_if(begin, end, [&](std::int64_t t) { return t >= vocab_size_; }); bad != end) {
      throw UsageError(cat("'", file_->path(), "' holds token ", *bad, ", outside the model's vocabulary of ",
                           vocab_size_, " (pass --vocab, or check --data-format)"));
    }
  }
  return data::Example(windows.narrow(1, 0, block_size_).contiguous(), windows.narrow(1, 1, block_size_).contiguous());
}

}  // namespace deepspeed::examples::gpt2
