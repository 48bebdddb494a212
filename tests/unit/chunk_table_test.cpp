// The multi-tensor kernels' chunk table (src/util/chunk_table.h): every chunk of a launch belongs to the tensor
// whose chunks contain it, whatever empty tensors sit between, before or after the others. The device Adam and
// the gradient norm's kernel search their tables with this function.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "src/util/chunk_table.h"

namespace {

struct Entry {
  std::int64_t numel;
  std::int64_t first_chunk;
};

std::vector<Entry> table_of(const std::vector<std::int64_t>& sizes, std::int64_t chunk, std::int64_t& total) {
  std::vector<Entry> table;
  total = 0;
  for (std::int64_t n : sizes) {
    table.push_back({n, total});
    total += deepspeed::util::chunks_of(n, chunk);
  }
  return table;
}

TEST(ChunkTable, ChunksCoverEveryElement) {
  EXPECT_EQ(deepspeed::util::chunks_of(0, 16384), 0);
  EXPECT_EQ(deepspeed::util::chunks_of(1, 16384), 1);
  EXPECT_EQ(deepspeed::util::chunks_of(16384, 16384), 1);
  EXPECT_EQ(deepspeed::util::chunks_of(16385, 16384), 2);
  EXPECT_EQ(deepspeed::util::chunks_of(std::int64_t{1} << 40, 16384), std::int64_t{1} << 26);
}

TEST(ChunkTable, EveryChunkFindsTheTensorThatHoldsIt) {
  constexpr std::int64_t kChunk = 4;
  const std::vector<std::vector<std::int64_t>> lists = {
      {1}, {4, 4, 4}, {0, 5}, {5, 0}, {0, 0, 3, 0, 9, 0, 0, 1, 0}, {13, 1, 0, 8, 7, 0, 2}};
  for (const auto& sizes : lists) {
    std::int64_t total = 0;
    const auto table = table_of(sizes, kChunk, total);
    for (std::int64_t c = 0; c < total; ++c) {
      const int owner = deepspeed::util::chunk_owner(table.data(), static_cast<int>(table.size()), c);
      const Entry& e = table[static_cast<std::size_t>(owner)];
      EXPECT_GT(e.numel, 0) << "chunk " << c << " given to an empty tensor";
      EXPECT_LE(e.first_chunk, c);
      EXPECT_LT(c, e.first_chunk + deepspeed::util::chunks_of(e.numel, kChunk)) << "chunk " << c;
    }
  }
}

}  // namespace
