#pragma once
/// \file
/// Training text for the GPT-2 example: token files as nanoGPT and llm.c write them, memory-mapped, or any
/// text file read as bytes (vocabulary 256), cut into windows of block_size + 1 tokens.
///
/// Formats:
///   - llm.c: a header of 256 int32 (magic 20240520, version 1 → uint16 tokens, 2 → uint32 tokens, the
///     token count) followed by the tokens;
///   - raw: a bare stream of uint16 tokens (nanoGPT's train.bin);
///   - bytes: every byte of the file is a token.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "deepspeed/data/dataset.h"

namespace deepspeed::examples::gpt2 {

/// Debian files of English prose the example trains on by default, most preferred first:
/// perldiag.pod (perl-modules-5.36, ~300 KB, which git pulls in) and the GPL-3 text (base-files, ~35 KB).
std::vector<std::string> default_text_candidates();
/// The first of default_text_candidates() that exists, or "" if none does.
std::string default_text_file();

enum class TokenFormat {
  kAuto,   ///< llm.c if the file starts with its magic, else raw uint16 for a `.bin` name, else bytes
  kLlmc,
  kRaw16,
  kBytes,
};

/// "auto" | "llmc" | "uint16" | "bytes"; throws UsageError otherwise.
TokenFormat parse_token_format(const std::string& name);
const char* token_format_name(TokenFormat format);

/// A read-only, memory-mapped token file. Safe to read from several threads.
class TokenFile {
 public:
  /// Maps `path`. Throws UsageError if it cannot be read, is empty, or does not match `format` (a bad llm.c
  /// header, a size that is not a whole number of tokens, a count that disagrees with the size).
  static std::shared_ptr<TokenFile> open(const std::string& path, TokenFormat format = TokenFormat::kAuto);
  ~TokenFile();
  TokenFile(const TokenFile&) = delete;
  TokenFile& operator=(const TokenFile&) = delete;

  std::int64_t size() const { return num_tokens_; }  ///< tokens in the file
  TokenFormat format() const { return format_; }    ///< the resolved format (never kAuto)
  int bytes_per_token() const { return width_; }
  const std::string& path() const { return path_; }

  /// Tokens [offset, offset + out.size()) as int64. Requires the range to lie inside the file.
  void read(std::int64_t offset, std::span<std::int64_t> out) const;

 private:
  TokenFile() = default;
  std::string path_;
  TokenFormat format_ = TokenFormat::kBytes;
  void* map_ = nullptr;
  std::size_t map_bytes_ = 0;
  const unsigned char* tokens_ = nullptr;
  std::int64_t num_tokens_ = 0;
  int width_ = 1;
};

/// Training samples from a TokenFile: sample i is a window of block_size + 1 tokens w, with data
/// x = w[:-1] and target y = w[1:] (int64 [block_size] each; batches [B, block_size]).
class TokenWindows : public data::Dataset {
 public:
  enum class Sampling {
    kSequential,  ///< window i starts at i·block_size: the file in non-overlapping windows
    kRandom,      ///< window i starts at a pseudo-random offset drawn from (seed, i), as nanoGPT samples
  };

  /// `num_windows` 0: as many as fit sequentially, (size - 1) / block_size. `vocab_size` > 0: get() throws
  /// UsageError on a token ≥ vocab_size (a model-file mismatch, caught before it reaches the GPU).
  /// Throws UsageError if the file holds fewer than block_size + 1 tokens.
  TokenWindows(std::shared_ptr<TokenFile> file, std::int64_t block_size, Sampling sampling = Sampling::kSequential,
               std::int64_t num_windows = 0, std::uint64_t seed = 0, std::int64_t vocab_size = 0);

  std::size_t size() const override { return static_cast<std::size_t>(num_windows_); }
  data::Example get(std::size_t index) override;
  data::Example get_batch(std::span<const std::size_t> indices) override;

  /// First token of window `index`.
  std::int64_t window_start(std::size_t index) const;
  std::int64_t block_size() const { return block_size_; }
  const TokenFile& file() const { return *file_; }

 private:
  std::shared_ptr<TokenFile> file_;
  std::int64_t block_size_;
  Sampling sampling_;
  std::int64_t num_windows_;
  std::uint64_t seed_;
  std::int64_t vocab_size_;
};

}  // namespace deepspeed::examples::gpt2
