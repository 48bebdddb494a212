#pragma once
// Internal: TFRecord framing, the container of TensorBoard event files. Each record is
//   uint64 length | uint32 masked CRC32C(length) | data | uint32 masked CRC32C(data)   (little-endian)
// CRC32C comes from ISA-L (hardware-accelerated); the framing and masking are the only hand-written parts.
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace deepspeed::monitor {

/// CRC32C (Castagnoli) of `data`.
std::uint32_t crc32c(std::string_view data);
/// TFRecord's masked CRC: rotate right by 15 and add 0xa282ead8, so CRCs of CRCs stay well distributed.
std::uint32_t masked_crc32c(std::string_view data);

class RecordWriter {
 public:
  /// Creates (truncates) `path`. Throws UsageError naming it when it cannot be opened.
  explicit RecordWriter(std::string path);
  ~RecordWriter();
  RecordWriter(const RecordWriter&) = delete;
  RecordWriter& operator=(const RecordWriter&) = delete;

  void append(std::string_view record);
  /// Hands the records to the OS (a crash of the process then loses nothing already flushed).
  void flush();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
};

}  // namespace deepspeed::monitor
