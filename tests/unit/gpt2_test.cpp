// The GPT-2 example's pieces beside the model (gpt2_model_test.cpp): parameter and FLOP arithmetic, the token
// readers and the profile's kernel categories.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "deepspeed/util/error.h"
#include "examples/gpt2/data.h"
#include "examples/gpt2/gpt_config.h"
#include "examples/gpt2/profile.h"

namespace gpt2 = deepspeed::examples::gpt2;

namespace {

TEST(Gpt2Flops, HandComputed) {
  const auto c124 = *gpt2::preset("124M");
  // N without the position embedding: 50304·768 + 12·(12·768² + 13·768) + 2·768.
  EXPECT_EQ(gpt2::num_parameters(c124, false), 38633472 + 85054464 + 1536);
  EXPECT_EQ(gpt2::num_parameters(c124), 123689472 + 786432);
  // 6·123,689,472 + 12·12·768·1024 = 742,136,832 + 113,246,208.
  EXPECT_DOUBLE_EQ(gpt2::flops_per_token(c124, 1024), 855383040.0);
  EXPECT_DOUBLE_EQ(gpt2::flops_per_token(c124, 512), 742136832.0 + 56623104.0);
  // 1M tokens/s on 8 GPUs: 8.5538304e14 / (8 · 989e12).
  EXPECT_NEAR(gpt2::mfu(855383040.0, 1e6, 8), 0.10811211, 1e-8);
  EXPECT_NEAR(gpt2::mfu(855383040.0, 1e6, 1, 312e12), 2.74161231, 1e-8);  // an A100's peak, one GPU
  // GPT-2 XL: 50304·1600 + 48·(12·1600² + 13·1600) + 3200; nanoGPT reports 1555.97M with 50257 tokens.
  const auto xl = *gpt2::preset("gpt2-xl");
  EXPECT_EQ(gpt2::num_parameters(xl, false), 1556048000);
  EXPECT_EQ(gpt2::num_parameters(gpt2::GPTConfig{.vocab_size = 50257, .n_layer = 48, .n_head = 25, .n_embd = 1600},
                                 false),
            1555972800);
  EXPECT_EQ(gpt2::num_parameters(*gpt2::preset("350M"), false), 353822720);
  EXPECT_EQ(gpt2::preset("774M")->n_embd, 1280);
  EXPECT_EQ(gpt2::preset("774M")->n_layer, 36);
  EXPECT_FALSE(gpt2::preset("7B"));
}

// A scratch directory removed with its files (std::filesystem::remove_all is unusable with LibTorch's wheel).
class TokenFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/gpt2_test_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    for (const auto& f : files_) ::unlink(f.c_str());
    ::rmdir(dir_.c_str());
  }
  std::string write(const std::string& name, const void* data, std::size_t bytes) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary).write(static_cast<const char*>(data), static_cast<std::streamsize>(bytes));
    files_.push_back(path);
    return path;
  }
  template <typename T>
  std::string write_llmc(const std::string& name, int version, const std::vector<T>& tokens, int claimed = -1) {
    std::vector<char> buf(1024 + tokens.size() * sizeof(T));
    const std::int32_t header[3] = {20240520, version, claimed >= 0 ? claimed : static_cast<std::int32_t>(tokens.size())};
    std::memcpy(buf.data(), header, sizeof header);
    std::memcpy(buf.data() + 1024, tokens.data(), tokens.size() * sizeof(T));
    return write(name, buf.data(), buf.size());
  }
  std::string dir_;
  std::vector<std::string> files_;
};

std::vector<std::int64_t> read_all(const gpt2::TokenFile& f, std::int64_t offset, std::int64_t n) {
  std::vector<std::int64_t> out(n);
  f.read(offset, out);
  return out;
}

TEST_F(TokenFiles, RawUint16) {
  std::vector<std::uint16_t> tokens(1000);
  for (std::size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<std::uint16_t>((i * 7919) % 65536);
  const auto path = write("train.bin", tokens.data(), tokens.size() * 2);
  auto f = gpt2::TokenFile::open(path);
  EXPECT_EQ(f->format(), gpt2::TokenFormat::kRaw16);
  ASSERT_EQ(f->size(), 1000);
  EXPECT_EQ(read_all(*f, 995, 5), (std::vector<std::int64_t>{tokens[995], tokens[996], tokens[997], tokens[998], tokens[999]}));
  EXPECT_THROW(read_all(*f, 996, 5), std::out_of_range);

  gpt2::TokenWindows windows(f, 10);
  ASSERT_EQ(windows.size(), 99u);  // (1000 - 1) / 10
  const auto sample = windows.get(3);
  for (int t = 0; t < 10; ++t) {
    EXPECT_EQ(sample.data[t].item<std::int64_t>(), tokens[30 + t]);
    EXPECT_EQ(sample.target[t].item<std::int64_t>(), tokens[31 + t]);
  }
  const std::size_t idx[] = {98, 0};
  const auto batch = windows.get_batch(idx);
  EXPECT_EQ(batch.data.sizes(), (std::vector<std::int64_t>{2, 10}));
  EXPECT_EQ(batch.target[0][9].item<std::int64_t>(), tokens[990]);
  EXPECT_EQ(batch.data.scalar_type(), at::kLong);
  // Tokens beyond the model's vocabulary are caught on the host.
  gpt2::TokenWindows small_vocab(f, 10, gpt2::TokenWindows::Sampling::kSequential, 0, 0, 50257);
  EXPECT_THROW(small_vocab.get_batch(idx), deepspeed::UsageError);
}

TEST_F(TokenFiles, LlmcHeaderFormats) {
  std::vector<std::uint16_t> t16{50256, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  auto f16 = gpt2::TokenFile::open(write_llmc("v1.bin", 1, t16));
  EXPECT_EQ(f16->format(), gpt2::TokenFormat::kLlmc);
  EXPECT_EQ(f16->bytes_per_token(), 2);
  EXPECT_EQ(read_all(*f16, 0, 11), std::vector<std::int64_t>(t16.begin(), t16.end()));

  std::vector<std::uint32_t> t32{128000, 70000, 5, 6};
  auto f32 = gpt2::TokenFile::open(write_llmc("v2.bin", 2, t32));
  EXPECT_EQ(f32->bytes_per_token(), 4);
  EXPECT_EQ(read_all(*f32, 0, 4), (std::vector<std::int64_t>{128000, 70000, 5, 6}));

  EXPECT_THROW(gpt2::TokenFile::open(write_llmc("short.bin", 1, t16, 12)), deepspeed::UsageError);
  EXPECT_THROW(gpt2::TokenFile::open(write_llmc("v9.bin", 9, t16)), deepspeed::UsageError);
  EXPECT_THROW(gpt2::TokenFile::open(write("odd.bin", "abc", 3)), deepspeed::UsageError);
  EXPECT_THROW(gpt2::TokenFile::open(write("raw.bin", t16.data(), 22), gpt2::TokenFormat::kLlmc),
               deepspeed::UsageError);
  EXPECT_THROW(gpt2::TokenFile::open(dir_ + "/absent.bin"), deepspeed::UsageError);
}

TEST_F(TokenFiles, RandomWindowsAreDeterministicAndInRange) {
  std::vector<std::uint16_t> tokens(500);
  for (std::size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<std::uint16_t>(i);
  auto f = gpt2::TokenFile::open(write("seq.bin", tokens.data(), 1000));
  using S = gpt2::TokenWindows::Sampling;
  gpt2::TokenWindows a(f, 32, S::kRandom, 1000, 7), b(f, 32, S::kRandom, 1000, 7), c(f, 32, S::kRandom, 1000, 8);
  EXPECT_EQ(a.size(), 1000u);  // more windows than fit sequentially: they overlap
  int differ = 0;
  std::int64_t lo = 1 << 30, hi = -1;
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a.window_start(i), b.window_start(i));
    differ += a.window_start(i) != c.window_start(i);
    lo = std::min(lo, a.window_start(i));
    hi = std::max(hi, a.window_start(i));
  }
  EXPECT_GT(differ, 900);
  EXPECT_GE(lo, 0);
  EXPECT_LE(hi, 500 - 33);  // the last full window of 33 tokens
  EXPECT_GT(hi, 400);       // and they spread over the file
  const auto s = a.get(17);  // a window of consecutive tokens, target shifted by one
  EXPECT_TRUE(at::equal(s.target, s.data + 1));
  EXPECT_THROW(gpt2::TokenWindows(f, 500), deepspeed::UsageError);  // 500 tokens < one window of 501
}

TEST_F(TokenFiles, ByteLevelText) {
  const std::string text = "The quick brown fox jumps over the lazy dog.\n";
  auto f = gpt2::TokenFile::open(write("fox.txt", text.data(), text.size()));
  EXPECT_EQ(f->format(), gpt2::TokenFormat::kBytes);
  ASSERT_EQ(f->size(), static_cast<std::int64_t>(text.size()));
  const auto all = read_all(*f, 0, f->size());
  for (std::size_t i = 0; i < text.size(); ++i) EXPECT_EQ(all[i], static_cast<unsigned char>(text[i]));
  // Forced byte reading of a .bin name; a vocabulary below 'z' is refused.
  auto forced = gpt2::TokenFile::open(write("fox.bin", text.data(), text.size()), gpt2::TokenFormat::kBytes);
  EXPECT_EQ(forced->size(), f->size());
  gpt2::TokenWindows w(f, 8, gpt2::TokenWindows::Sampling::kSequential, 0, 0, 100);
  EXPECT_THROW(w.get(0), deepspeed::UsageError);  // 'h' = 104
  EXPECT_EQ(gpt2::parse_token_format("uint16"), gpt2::TokenFormat::kRaw16);
  EXPECT_THROW(gpt2::parse_token_format("utf8"), deepspeed::UsageError);
}

TEST(Gpt2Data, DefaultTextFileShipsWithDebian) {
  const std::string path = gpt2::default_text_file();
  ASSERT_FALSE(path.empty()) << "none of the Debian text files is installed";
  auto f = gpt2::TokenFile::open(path);
  EXPECT_EQ(f->format(), gpt2::TokenFormat::kBytes);
  EXPECT_GT(f->size(), 30000);
}

}  // namespace

TEST(Gpt2Profile, KernelCategories) {
  EXPECT_EQ(gpt2::kernel_category("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64"), "GEMM");
  EXPECT_EQ(gpt2::kernel_category("nvjet_tst_128x256_64x4_1x2_h_bz_coopA_NTT"), "GEMM");
  EXPECT_EQ(gpt2::kernel_category("void pytorch_flash::flash_bwd_dq_dk_dv_loop_seqk_parallel_kernel<...>"), "attention");
  EXPECT_EQ(gpt2::kernel_category("void deepspeed::ops::detail::cross_entropy_forward<__nv_bfloat16, true>"),
            "cross-entropy");
  EXPECT_EQ(gpt2::kernel_category("void at::native::(anonymous namespace)::vectorized_layer_norm_kernel<...>"),
            "LayerNorm");
  EXPECT_EQ(gpt2::kernel_category("void deepspeed::ops::detail::(anonymous namespace)::bias_gelu_backward<...>"),
            "bias+GELU");
  EXPECT_EQ(gpt2::kernel_category("void at::native::GammaBetaBackwardCUDAKernel<...>"), "LayerNorm");
  // linear_chunks' pass is where autograd's cat of q, k, v was (copy/fill), so the rows compare.
  EXPECT_EQ(gpt2::kernel_category("void deepspeed::ops::detail::(anonymous namespace)::linear_chunks_copy<...>"),
            "copy/fill");
  EXPECT_EQ(gpt2::kernel_category("void at::native::(anonymous namespace)::CatArrayBatchedCopy_vectorized<...>"),
            "copy/fill");
  // DS_ADD_LAYER_NORM_SPLIT=1's two kernels count as LayerNorm too, so the profile rows compare.
  EXPECT_EQ(gpt2::kernel_category("void deepspeed::ops::detail::(anonymous namespace)::add_layer_norm_input_grad<...>"),
            "LayerNorm");
  EXPECT_EQ(gpt2::kernel_category("void deepspeed::ops::detail::(anonymous namespace)::add_layer_norm_param_columns<...>"),
            "LayerNorm");
  EXPECT_EQ(gpt2::kernel_category("ncclDevKernel_AllReduce_Sum_bf16_RING_LL"), "communication");
  EXPECT_EQ(gpt2::kernel_category("void at::native::(anonymous namespace)::multi_tensor_apply_kernel<FusedAdamMathFunctor>"),
            "optimizer");
  EXPECT_EQ(gpt2::kernel_category("Memcpy DtoD (Device -> Device)"), "copy/fill");
  EXPECT_EQ(gpt2::kernel_category("void at::native::vectorized_elementwise_kernel<4, GeluCUDAKernelImpl>"), "elementwise");
  EXPECT_EQ(gpt2::kernel_category("void at::native::reduce_kernel<512, 1, ReduceOp<float, NormTwoOps>>"), "reduction");
  EXPECT_EQ(gpt2::kernel_category("something_else"), "other");
  EXPECT_EQ(gpt2::kernel_category("void deepspeed::optim::detail::adam_master_step<float, __nv_bfloat16>"), "optimizer");
  EXPECT_EQ(gpt2::kernel_category("void deepspeed::zero::detail::into_fp32<__nv_bfloat16, false, true>"), "copy/fill");
}

// Kernels on two streams overlap; the device is idle only where no kernel runs.
TEST(Gpt2Profile, IdleBetweenKernels) {
  const auto idle = gpt2::idle_between({{3'000'000, 4'000'000, "c"},     // 1 ms, after a 1 ms gap
                                        {0, 1'000'000, "a"},             // out of order: sorted first
                                        {500'000, 2'000'000, "b"},       // overlaps a: busy 0-2 ms
                                        {4'000'000, 4'500'000, "d"},     // touches c: no gap
                                        {4'600'000, 5'000'000, "e"}},    // a 0.1 ms gap
                                       /*top=*/1);
  EXPECT_NEAR(idle.span_ms, 5.0, 1e-9);
  EXPECT_NEAR(idle.busy_ms, 3.9, 1e-9);
  EXPECT_NEAR(idle.idle_ms, 1.1, 1e-9);
  EXPECT_EQ(idle.gaps, 2);
  ASSERT_EQ(idle.largest.size(), 1u);
  EXPECT_NEAR(idle.largest[0].ms, 1.0, 1e-9);
  EXPECT_EQ(idle.largest[0].before, "b");  // b ends the first busy interval, not a
  EXPECT_EQ(idle.largest[0].after, "c");
  EXPECT_EQ(gpt2::idle_between({}).gaps, 0);
}

TEST(Gpt2Profile, RowsSumByNameAndCategory) {
  const std::vector<std::pair<std::string, std::uint64_t>> d = {
      {"sm90_gemm_a", 3'000'000}, {"sm90_gemm_a", 1'000'000}, {"sm90_gemm_b", 2'000'000}, {"Memcpy HtoD", 500'000}};
  const auto by_name = gpt2::rows_by_name(d);
  ASSERT_EQ(by_name.size(), 3u);
  EXPECT_EQ(by_name[0].name, "sm90_gemm_a");
  EXPECT_DOUBLE_EQ(by_name[0].total_ms, 4.0);
  EXPECT_EQ(by_name[0].calls, 2);
  const auto by_cat = gpt2::rows_by_category(d);
  ASSERT_EQ(by_cat.size(), 2u);
  EXPECT_EQ(by_cat[0].name, "GEMM");
  EXPECT_DOUBLE_EQ(by_cat[0].total_ms, 6.0);
  EXPECT_EQ(by_cat[1].name, "copy/fill");
  EXPECT_EQ(by_cat[1].calls, 1);
}
