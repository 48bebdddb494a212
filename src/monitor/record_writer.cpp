#include "src/monitor/record_writer.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <isa-l/crc.h>

#include "deepspeed/util/error.h"
#include "deepspeed/util/strings.h"

namespace deepspeed::monitor {

using util::cat;

std::uint32_t crc32c(std::string_view data) {
  // ISA-L's iSCSI CRC is CRC32C without the final inversion; start from all ones and invert, as the standard does.
  std::uint32_t crc = ~0u;
  std::size_t done = 0;
  while (done < data.size()) {  // its length parameter is an int
    const int chunk = static_cast<int>(std::min<std::size_t>(data.size() - done, 1u << 30));
    crc = crc32_iscsi(reinterpret_cast<unsigned char*>(const_cast<char*>(data.data() + done)), chunk, crc);
    done += static_cast<std::size_t>(chunk);
  }
  return ~crc;
}

std::uint32_t masked_crc32c(std::string_view data) {
  const std::uint32_t crc = crc32c(data);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

namespace {

template <typename T>
std::string little_endian(T value) {
  std::string out(sizeof(T), '\0');
  for (std::size_t i = 0; i < sizeof(T); ++i) out[i] = static_cast<char>((value >> (8 * i)) & 0xff);
  return out;
}

}  // namespace

RecordWriter::RecordWriter(std::string path) : path_(std::move(path)) {
  file_ = std::fopen(path_.c_str(), "wb");
  if (!file_) throw UsageError(cat("tensorboard: cannot create ", path_, ": ", std::strerror(errno)));
}

RecordWriter::~RecordWriter() {
  if (file_) std::fclose(file_);
}

void RecordWriter::append(std::string_view record) {
  const std::string length = little_endian<std::uint64_t>(record.size());
  std::string framed = length;
  framed += little_endian<std::uint32_t>(masked_crc32c(length));
  framed += record;
  framed += little_endian<std::uint32_t>(masked_crc32c(record));
  if (std::fwrite(framed.data(), 1, framed.size(), file_) != framed.size()) {
    throw JobError(cat("tensorboard: cannot write ", path_, ": ", std::strerror(errno)));
  }
}

void RecordWriter::flush() {
  if (std::fflush(file_) != 0) throw JobError(cat("tensorboard: cannot write ", path_, ": ", std::strerror(errno)));
}

}  // namespace deepspeed::monitor
