// The flops profiler: closed-form MAC/flop/parameter counts (DeepSpeed's formulas) on a Linear stack and the
// tutorial's CIFAR network, de-duplication of nested operators, attribution, start/stop/reset, the report.
#include "deepspeed/profiling/flops_profiler.h"

#include <filesystem>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include <unistd.h>

#include <gtest/gtest.h>
#include <ATen/ATen.h>
#include <torch/nn/functional/linear.h>

#include "deepspeed/util/error.h"
#include "examples/cifar10/net.h"
#include "src/profiling/flop_formulas.h"

namespace {

using deepspeed::config::FlopsProfilerConfig;
using deepspeed::profiling::FlopsProfiler;
namespace prof = deepspeed::profiling;

struct StackImpl : torch::nn::Module {
  StackImpl(std::int64_t d0, std::int64_t d1, std::int64_t d2)
      : fc1(register_module("fc1", torch::nn::Linear(d0, d1))), fc2(register_module("fc2", torch::nn::Linear(d1, d2))) {}
  at::Tensor forward(const at::Tensor& x) { return fc2(fc1(x)); }
  torch::nn::Linear fc1, fc2;
};
TORCH_MODULE(Stack);

struct InnerImpl : torch::nn::Module {
  explicit InnerImpl(std::int64_t d) : fc(register_module("fc", torch::nn::Linear(d, d))) {}
  torch::nn::Linear fc;
};
TORCH_MODULE(Inner);

struct OuterImpl : torch::nn::Module {
  explicit OuterImpl(std::int64_t d)
      : inner(register_module("inner", Inner(d))), other(register_module("other", torch::nn::Linear(d, d))) {}
  Inner inner;
  torch::nn::Linear other;
};
TORCH_MODULE(Outer);

FlopsProfilerConfig config() {
  FlopsProfilerConfig cfg;
  cfg.enabled = true;
  return cfg;
}

std::int64_t linear_params(std::int64_t in, std::int64_t out) { return in * out + out; }

// The CIFAR network's figures for a batch of B 3×32×32 images, from its shapes and DeepSpeed's formulas.
struct CifarExpected {
  explicit CifarExpected(std::int64_t B) {
    const std::int64_t out1 = 32 - 5 + 1, out2 = out1 / 2 - 5 + 1;  // 28, 10
    conv1_macs = 5 * 5 * 3 * 6 * B * out1 * out1;
    conv1_flops = 2 * conv1_macs + 6 * B * out1 * out1;  // bias: one add per output element
    conv2_macs = 5 * 5 * 6 * 16 * B * out2 * out2;
    conv2_flops = 2 * conv2_macs + 16 * B * out2 * out2;
    const std::int64_t flat = 16 * (out2 / 2) * (out2 / 2);  // 400
    fc_macs = {B * flat * 120, B * 120 * 84, B * 84 * 10};
    // relu and max_pool2d each cost one flop per input element; relu after fc1 and fc2.
    const std::int64_t act1 = B * 6 * out1 * out1, act2 = B * 16 * out2 * out2;
    root_only_flops = 2 * act1 + 2 * act2 + B * 120 + B * 84;
    conv_params = {3 * 6 * 25 + 6, 6 * 16 * 25 + 16};
    fc_params = {linear_params(flat, 120), linear_params(120, 84), linear_params(84, 10)};
  }
  std::int64_t macs() const { return conv1_macs + conv2_macs + fc_macs[0] + fc_macs[1] + fc_macs[2]; }
  std::int64_t module_flops() const { return conv1_flops + conv2_flops + 2 * (fc_macs[0] + fc_macs[1] + fc_macs[2]); }
  std::int64_t flops() const { return module_flops() + root_only_flops; }
  std::int64_t params() const { return conv_params[0] + conv_params[1] + fc_params[0] + fc_params[1] + fc_params[2]; }

  std::int64_t conv1_macs, conv1_flops, conv2_macs, conv2_flops, root_only_flops;
  std::array<std::int64_t, 3> fc_macs, fc_params;
  std::array<std::int64_t, 2> conv_params;
};

// DeepSpeed's '{:<70}  {:<8}' summary line.
std::string summary_line(const std::string& label, std::string value) {
  std::string padded = label;
  padded.resize(std::max<std::size_t>(70, label.size()), ' ');
  if (value.size() < 8) value.resize(8, ' ');
  return padded + "  " + value + "\n";
}

TEST(FlopsProfilerFormat, NumbersAsDeepSpeedPrintsThem) {
  EXPECT_EQ(prof::number_to_string(336.23e6), "336.23 M");
  EXPECT_EQ(prof::params_to_string(336.23e6), "336.23 M");
  EXPECT_EQ(prof::number_to_string(627.99e9), "627.99 G");
  EXPECT_EQ(prof::macs_to_string(313.99e9), "313.99 GMACs");
  EXPECT_EQ(prof::number_to_string(6279.86e9), "6.28 T");  // the tutorial's "6279.86 G" predates the T prefix
  EXPECT_EQ(prof::flops_to_string(81.9e12), "81.9 TFLOPS");
  EXPECT_EQ(prof::duration_to_string(34.09e-6), "34.09 us");
  EXPECT_EQ(prof::duration_to_string(76.67e-3), "76.67 ms");
  EXPECT_EQ(prof::params_to_string(1.5e9), "1.5 B");
  EXPECT_EQ(prof::params_to_string(0), "0");
  EXPECT_EQ(prof::number_to_string(0), "0 ");
  EXPECT_EQ(prof::number_to_string(999), "999 ");
  EXPECT_EQ(prof::number_to_string(62006), "62.01 K");  // rounded to two decimals
  EXPECT_EQ(prof::number_to_string(2e3), "2 K");        // Python's {:g}: no trailing zeros
}

TEST(FlopsProfiler, LinearStackClosedForm) {
  const std::int64_t B = 8, T = 5, d0 = 16, d1 = 32, d2 = 4;
  Stack model(d0, d1, d2);
  FlopsProfiler profiler(config(), model.ptr());
  EXPECT_EQ(profiler.total_params(), linear_params(d0, d1) + linear_params(d1, d2));
  profiler.start();
  model->forward(at::randn({B, d0}));
  profiler.stop();
  const std::int64_t macs = B * (d0 * d1 + d1 * d2);
  EXPECT_EQ(profiler.total_macs(), macs);
  EXPECT_EQ(profiler.total_flops(), 2 * macs);  // DeepSpeed's linear: 2 × MACs, bias not counted
  const auto fc1 = profiler.module_profile("fc1"), fc2 = profiler.module_profile("fc2");
  ASSERT_TRUE(fc1 && fc2);
  EXPECT_EQ(fc1->macs, B * d0 * d1);
  EXPECT_EQ(fc2->macs, B * d1 * d2);
  EXPECT_EQ(fc1->params, linear_params(d0, d1));
  EXPECT_EQ(fc1->type, "Linear");
  EXPECT_EQ(fc1->depth, 1);

  // A 3-D input: aten::linear goes through matmul/mm inside; still counted once per layer.
  profiler.reset();
  profiler.start();
  model->forward(at::randn({B, T, d0}));
  profiler.stop();
  EXPECT_EQ(profiler.total_macs(), B * T * (d0 * d1 + d1 * d2));
  EXPECT_EQ(profiler.total_flops(), 2 * B * T * (d0 * d1 + d1 * d2));
}

TEST(FlopsProfiler, CifarNetPerModule) {
  const std::int64_t B = 4;
  Net net(3, 32);
  FlopsProfiler profiler(config(), net.ptr());
  profiler.start();
  net->forward(at::randn({B, 3, 32, 32}));
  profiler.stop();
  const CifarExpected want(B);
  EXPECT_EQ(profiler.total_macs(), want.macs());
  EXPECT_EQ(profiler.total_flops(), want.flops());
  EXPECT_EQ(profiler.total_params(), want.params());

  const auto conv1 = *profiler.module_profile("conv1"), conv2 = *profiler.module_profile("conv2");
  EXPECT_EQ(conv1.macs, want.conv1_macs);
  EXPECT_EQ(conv1.flops, want.conv1_flops);
  EXPECT_EQ(conv1.params, want.conv_params[0]);
  EXPECT_EQ(conv2.macs, want.conv2_macs);
  EXPECT_EQ(conv2.flops, want.conv2_flops);
  EXPECT_EQ(conv2.params, want.conv_params[1]);
  const char* fcs[] = {"fc1", "fc2", "fc3"};
  for (int i = 0; i < 3; ++i) {
    const auto fc = *profiler.module_profile(fcs[i]);
    EXPECT_EQ(fc.macs, want.fc_macs[i]) << fcs[i];
    EXPECT_EQ(fc.flops, 2 * want.fc_macs[i]) << fcs[i];
    EXPECT_EQ(fc.params, want.fc_params[i]) << fcs[i];
  }
  // relu and the parameterless pool are charged to the root only.
  const auto pool = *profiler.module_profile("pool");
  EXPECT_EQ(pool.flops, 0);
  EXPECT_EQ(pool.macs, 0);
  std::int64_t children_flops = 0;
  for (const auto& m : profiler.module_profiles()) {
    if (m.depth == 1) children_flops += m.flops;
  }
  EXPECT_EQ(profiler.total_flops() - children_flops, want.root_only_flops);
  EXPECT_EQ(profiler.module_profiles()[0].type, "Net");
}

TEST(FlopsProfiler, NestedOperatorsCountedOnce) {
  Stack model(2, 2, 2);  // no operator below uses its parameters
  FlopsProfiler profiler(config(), model.ptr());
  const std::int64_t n = 6, k = 5, m = 3, b = 4;
  const auto bias = at::randn({n, m}), x = at::randn({n, k}), w = at::randn({k, m});
  profiler.start();
  at::addmm(bias, x, w);  // addmm: 2 × MACs + one add per element of `self`
  profiler.stop();
  EXPECT_EQ(profiler.total_macs(), n * k * m);
  EXPECT_EQ(profiler.total_flops(), 2 * n * k * m + n * m);

  profiler.reset();
  const auto xb = at::randn({b, n, k}), yb = at::randn({b, k, m});
  profiler.start();
  at::matmul(xb, yb);  // matmul → bmm inside: one count
  torch::nn::functional::linear(x, w.t().contiguous());  // linear → mm/addmm inside: one count
  profiler.stop();
  EXPECT_EQ(profiler.total_macs(), b * n * k * m + n * k * m);
  EXPECT_EQ(profiler.total_flops(), 2 * (b * n * k * m + n * k * m));
  // No parameter involved: all of it is the root's.
  EXPECT_EQ(profiler.module_profile("fc1")->macs, 0);
  EXPECT_EQ(profiler.module_profile("")->macs, b * n * k * m + n * k * m);
}

TEST(FlopsProfiler, ElementwiseAndNorms) {
  Stack model(2, 2, 2);
  FlopsProfiler profiler(config(), model.ptr());
  const auto a = at::randn({3, 4, 5}), bias = at::randn({5});
  const auto weight = at::ones({5}), shift = at::zeros({5});
  profiler.start();
  at::add(a, bias);                                    // broadcast result: 3·4·5
  at::mul(a, 2.0);                                     // scalar operand: 3·4·5
  at::layer_norm(a, {5}, weight, shift);               // affine: 5 per element
  at::layer_norm(a, {5});                              // 4 per element
  at::softmax(a, -1);                                  // 1 per element
  at::gelu(a);                                         // 1 per element
  profiler.stop();
  EXPECT_EQ(profiler.total_macs(), 0);
  EXPECT_EQ(profiler.total_flops(), 60 + 60 + 5 * 60 + 4 * 60 + 60 + 60);
}

// Q·Kᵀ and attention·V: 2·B·H·T²·D MACs, counted once for SDPA (the math path's matmuls inside are nested) and
// the same for a backend's kernel called directly, as ops::qkv_attention calls cuDNN's.
TEST(FlopsProfiler, AttentionCountedOnceAndPerBackendKernel) {
  Stack model(2, 2, 2);
  FlopsProfiler profiler(config(), model.ptr());
  const std::int64_t b = 2, h = 3, t = 5, d = 4;
  const auto q = at::randn({b, h, t, d}), k = at::randn({b, h, t, d}), v = at::randn({b, h, t, d});
  profiler.start();
  at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true);
  profiler.stop();
  EXPECT_EQ(profiler.total_macs(), 2 * b * h * t * t * d);
  EXPECT_EQ(profiler.total_flops(), 4 * b * h * t * t * d);
  const std::vector<c10::IValue> inputs{q, k, v};
  for (const char* kernel : {"aten::_scaled_dot_product_cudnn_attention", "aten::_scaled_dot_product_flash_attention",
                             "aten::_scaled_dot_product_efficient_attention"}) {
    const auto count = prof::detail::count_op(kernel, c10::ArrayRef<const c10::IValue>(inputs.data(), inputs.size()));
    ASSERT_TRUE(count.has_value()) << kernel;
    EXPECT_EQ(count->macs, 2 * b * h * t * t * d) << kernel;
  }
}

TEST(FlopsProfiler, AttributionToOwnerAndCommonAncestor) {
  const std::int64_t d = 4, B = 3;
  Outer model(d);
  FlopsProfiler profiler(config(), model.ptr());
  const auto& fc = model->inner->fc;
  const auto x = at::randn({B, d});
  profiler.start();
  torch::nn::functional::linear(x, fc->weight, fc->bias);                   // inner.fc
  torch::nn::functional::linear(x, fc->weight.detach());                    // alias: matched by data pointer
  torch::nn::functional::linear(x, fc->weight, model->other->bias);         // inner.fc and other → root
  profiler.stop();
  const std::int64_t one = B * d * d;
  EXPECT_EQ(profiler.module_profile("inner.fc")->macs, 2 * one);
  EXPECT_EQ(profiler.module_profile("inner")->macs, 2 * one);
  EXPECT_EQ(profiler.module_profile("other")->macs, 0);
  EXPECT_EQ(profiler.total_macs(), 3 * one);
  EXPECT_EQ(profiler.module_profile("inner.fc")->depth, 2);
  EXPECT_FALSE(profiler.module_profile("nope"));
}

TEST(FlopsProfiler, StorageSwappedInPlaceLikeZero3) {
  const std::int64_t d = 4, B = 2;
  Stack model(d, d, d);
  auto weight = model->fc1->weight;
  const auto full = weight.detach().clone();
  {
    at::NoGradGuard no_grad;
    weight.set_data(at::empty({0}));  // released: numel 0, as ZeRO-3 leaves a parameter between uses
  }
  FlopsProfiler profiler(config(), model.ptr());
  EXPECT_EQ(profiler.total_params(), 2 * linear_params(d, d) - d * d);
  profiler.start();
  weight.set_data(full);  // gathered: new storage, same TensorImpl
  model->forward(at::randn({B, d}));
  profiler.stop();
  EXPECT_EQ(profiler.module_profile("fc1")->macs, B * d * d);
  EXPECT_EQ(profiler.total_params(), 2 * linear_params(d, d));  // grown to the size the operator saw
}

TEST(FlopsProfiler, StartStopResetAndIdle) {
  const std::int64_t B = 2;
  Net net(3, 32);
  FlopsProfiler profiler(config(), net.ptr());
  const auto x = at::randn({B, 3, 32, 32});
  net->forward(x);  // not started: nothing counted
  EXPECT_EQ(profiler.total_flops(), 0);
  EXPECT_FALSE(profiler.started());

  profiler.start();
  EXPECT_TRUE(profiler.started());
  EXPECT_THROW(profiler.start(), deepspeed::UsageError);
  FlopsProfiler second(config(), net.ptr());
  EXPECT_THROW(second.start(), deepspeed::UsageError);  // one profiler per thread
  auto loss = net->forward(x).sum();
  loss.backward();  // backward operators are not counted
  std::thread([&] { net->forward(x); }).join();  // nor other threads'
  profiler.stop();
  const CifarExpected want(B);
  EXPECT_EQ(profiler.total_flops(), want.flops());
  EXPECT_GT(profiler.total_latency_s(), 0);

  net->forward(x);  // stopped
  EXPECT_EQ(profiler.total_flops(), want.flops());
  profiler.start();  // windows accumulate
  net->forward(x);
  profiler.stop();
  EXPECT_EQ(profiler.total_flops(), 2 * want.flops());
  EXPECT_EQ(profiler.total_macs(), 2 * want.macs());

  profiler.reset();
  EXPECT_EQ(profiler.total_flops(), 0);
  EXPECT_EQ(profiler.total_macs(), 0);
  EXPECT_EQ(profiler.total_latency_s(), 0);
  EXPECT_EQ(profiler.total_params(), want.params());
}

TEST(FlopsProfiler, ReportSummaryAggregatedDetailed) {
  const std::int64_t B = 4;
  Net net(3, 32);
  auto cfg = config();
  cfg.recompute_fwd_factor = 0.5;
  cfg.top_modules = 3;
  cfg.module_depth = 2;
  FlopsProfiler profiler(cfg, net.ptr());
  profiler.start();
  net->forward(at::randn({B, 3, 32, 32}));
  profiler.stop();
  const CifarExpected want(B);
  const auto flops = static_cast<double>(want.flops());
  FlopsProfiler::ReportContext ctx{3, 2, 2, B, 2.0, 4.0, 1.0};
  const std::string text = profiler.report(ctx);
  if (std::getenv("DS_PRINT_PROFILE") != nullptr) std::cout << text;  // to look at the whole layout

  EXPECT_NE(text.find("-------------------------- DeepSpeed Flops Profiler --------------------------\n"
                      "Profile Summary at step 3:\n"),
            std::string::npos);
  for (const auto& expected :
       {summary_line("world size: ", "2"), summary_line("data parallel size: ", "2"),
        summary_line("model parallel size: ", "1"), summary_line("batch size per GPU: ", "4"),
        summary_line("params per GPU: ", prof::params_to_string(want.params())),
        summary_line("fwd MACs per GPU: ", prof::macs_to_string(want.macs())),
        summary_line("fwd flops per GPU: ", prof::number_to_string(flops)),
        summary_line("fwd latency: ", "2 ms"),
        summary_line("fwd FLOPS per GPU = fwd flops per GPU / fwd latency: ", prof::flops_to_string(flops / 2e-3)),
        summary_line("bwd latency: ", "4 ms"),
        summary_line("bwd FLOPS per GPU = 2.5 * fwd flops per GPU / bwd latency: ",
                     prof::flops_to_string(2.5 * flops / 4e-3)),
        summary_line("fwd+bwd FLOPS per GPU = 3.5 * fwd flops per GPU / (fwd+bwd latency): ",
                     prof::flops_to_string(3.5 * flops / 6e-3)),
        summary_line("step latency: ", "1 ms"), summary_line("iter latency: ", "7 ms"),
        summary_line("FLOPS per GPU = 3.5 * fwd flops per GPU / iter latency: ",
                     prof::flops_to_string(3.5 * flops / 7e-3)),
        summary_line("samples/second: ", "1142.86")}) {  // 4 × 2 samples / 7 ms
    EXPECT_NE(text.find(expected), std::string::npos) << "missing: " << expected << "\nin:\n" << text;
  }

  // Aggregated: depth 0 is the network; depth 1 ranks the classes (Linear, Conv2d, MaxPool2d).
  const std::int64_t linear_params = want.fc_params[0] + want.fc_params[1] + want.fc_params[2];
  const std::int64_t conv_params = want.conv_params[0] + want.conv_params[1];
  const std::int64_t linear_macs = want.fc_macs[0] + want.fc_macs[1] + want.fc_macs[2];
  const std::int64_t conv_macs = want.conv1_macs + want.conv2_macs;
  ASSERT_GT(conv_macs, linear_macs);
  ASSERT_GT(linear_params, conv_params);
  EXPECT_NE(text.find("Top 3 modules in terms of params, MACs or fwd latency at different model depths:\n"
                      "depth 0:\n    params      - {'Net': '" + prof::params_to_string(want.params()) + "'}\n"
                      "    MACs        - {'Net': '" + prof::macs_to_string(want.macs()) + "'}\n"),
            std::string::npos) << text;
  EXPECT_NE(text.find("depth 1:\n    params      - {'Linear': '" + prof::params_to_string(linear_params) +
                      "', 'Conv2d': '" + prof::params_to_string(conv_params) + "', 'MaxPool2d': '0'}\n"
                      "    MACs        - {'Conv2d': '" + prof::macs_to_string(conv_macs) + "', 'Linear': '" +
                      prof::macs_to_string(linear_macs) + "', 'MaxPool2d': '0 MACs'}\n"),
            std::string::npos) << text;
  EXPECT_EQ(text.find("depth 2:"), std::string::npos);

  // Detailed: PyTorch's module repr with the figures first.
  EXPECT_NE(text.find("Detailed Profile per GPU"), std::string::npos);
  EXPECT_NE(text.find("\nNet(\n  " + prof::params_to_string(want.params()) + " = 100% Params, " +
                      prof::macs_to_string(want.macs()) + " = 100% MACs, "),
            std::string::npos) << text;
  EXPECT_NE(text.find("\n  (conv1): Conv2d(" + prof::params_to_string(want.conv_params[0]) + " = "),
            std::string::npos) << text;
  EXPECT_NE(text.find(prof::macs_to_string(want.conv1_macs) + " = "), std::string::npos);
  EXPECT_NE(text.find("(pool): MaxPool2d(0 = 0% Params, 0 MACs = 0% MACs, "), std::string::npos) << text;
  EXPECT_NE(text.find("kernel_size=[5, 5]"), std::string::npos);  // the module's own description follows

  // module_depth −1: DeepSpeed's range stops before the innermost depth; no detail when not asked for.
  cfg.module_depth = -1;
  cfg.detailed = false;
  const auto dir = std::filesystem::temp_directory_path() / ("flops_profiler_test_" + std::to_string(::getpid()));
  cfg.output_file = (dir / "sub" / "profile.txt").string();
  FlopsProfiler shallow(cfg, net.ptr());
  shallow.start();
  net->forward(at::randn({B, 3, 32, 32}));
  shallow.stop();
  const std::string brief = shallow.report(ctx);
  EXPECT_NE(brief.find("depth 0:"), std::string::npos);
  EXPECT_EQ(brief.find("depth 1:"), std::string::npos);
  EXPECT_EQ(brief.find("Detailed Profile per GPU"), std::string::npos);
  shallow.write_report(ctx);
  std::ifstream in(*cfg.output_file);
  std::stringstream written;
  written << in.rdbuf();
  EXPECT_EQ(written.str(), brief);
  // (not remove_all: LibTorch's wheel exports a broken copy of it, see src/checkpoint/files.cpp)
  std::filesystem::remove(*cfg.output_file);
  std::filesystem::remove(dir / "sub");
  std::filesystem::remove(dir);
}

TEST(FlopsProfiler, ReportWithoutEngineTimings) {
  Stack model(4, 4, 4);
  FlopsProfiler profiler(config(), model.ptr());
  profiler.start();
  model->forward(at::randn({2, 4}));
  profiler.stop();
  const std::string text = profiler.report(FlopsProfiler::ReportContext{});
  EXPECT_EQ(text.find("world size:"), std::string::npos);
  EXPECT_EQ(text.find("bwd latency:"), std::string::npos);
  EXPECT_NE(text.find(summary_line("fwd latency: ", prof::duration_to_string(profiler.total_latency_s()))),
            std::string::npos) << text;
}

}  // namespace
