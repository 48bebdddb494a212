// The model-state estimate against the ZeRO paper's closed forms (one tensor whose size every world size
// divides, so no padding): Ψ parameters, N ranks, 16-bit weights, Adam (12 bytes of fp32 state each).
#include <cstdlib>

#include <gtest/gtest.h>

#include "deepspeed/zero/activation_estimate.h"
#include "deepspeed/zero/bucket_plan.h"
#include "deepspeed/zero/memory_estimate.h"

namespace deepspeed::zero {
namespace {

constexpr std::int64_t kPsi = 1'024'000;  // a multiple of 16 × 4

config::Config make_config(int stage, bool bf16, const std::string& offload = "none", double ratio = 1.0,
                           std::int64_t bucket = 500'000'000, int gas = 1) {
  config::Json json = {{"train_batch_size", 8 * gas},
                       {"gradient_accumulation_steps", gas},
                       {"optimizer", {{"type", "AdamW"}, {"params", {{"lr", 1e-3}}}}},
                       {"zero_optimization",
                        {{"stage", stage}, {"reduce_bucket_size", bucket},
                         {"offload_optimizer", {{"device", offload}, {"ratio", ratio}}}}}};
  if (bf16) json["bf16"] = {{"enabled", true}};
  if (stage == 0) json["zero_optimization"].erase("offload_optimizer");
  return config::parse_config(json, "<test>", 4);
}

MemoryEstimate estimate(const config::Config& c) { return estimate_model_states(c, ModelShape{{kPsi}, 0}, 4); }

TEST(MemoryEstimate, StagesMatchTheZeroPaper) {
  const auto s0 = estimate(make_config(0, true));
  EXPECT_EQ(s0.weights, 2 * kPsi);
  EXPECT_EQ(s0.gradients, 4 * kPsi);  // bf16 without ZeRO accumulates in fp32 (DeepSpeed's default)
  EXPECT_EQ(s0.optimizer, 12 * kPsi);
  const auto s1 = estimate(make_config(1, true));
  EXPECT_EQ(s1.device_total(), 2 * kPsi + 2 * kPsi + 12 * kPsi / 4);
  const auto s2 = estimate(make_config(2, true));
  EXPECT_EQ(s2.device_total(), 2 * kPsi + 14 * kPsi / 4);
  const auto s3 = estimate(make_config(3, true));
  EXPECT_EQ(s3.device_total(), 16 * kPsi / 4);
  for (const auto& e : {s0, s1, s2, s3}) EXPECT_EQ(e.host_total(), 0);
}

// One GPU without gradient accumulation: FusedAdam reads the 16-bit gradients autograd made, no fp32 buffer.
TEST(MemoryEstimate, OneRankWithoutAccumulationKeepsSixteenBitGradients) {
  EXPECT_EQ(estimate_model_states(make_config(0, true), ModelShape{{kPsi}, 0}, 1).gradients, 2 * kPsi);
  EXPECT_EQ(estimate_model_states(make_config(0, true, "none", 1.0, 500'000'000, 2), ModelShape{{kPsi}, 0}, 1).gradients,
            4 * kPsi);  // accumulation: the fp32 buffer
  auto torch_adam = make_config(0, true);
  torch_adam.optimizer.torch_adam = true;  // does not up-cast: the fp32 buffer
  EXPECT_EQ(estimate_model_states(torch_adam, ModelShape{{kPsi}, 0}, 1).gradients, 4 * kPsi);
}

TEST(MemoryEstimate, Fp32ModelIsItsOwnMaster) {
  const auto e = estimate(make_config(0, false));
  EXPECT_EQ(e.weights, 4 * kPsi);
  EXPECT_EQ(e.gradients, 4 * kPsi);
  EXPECT_EQ(e.optimizer, 8 * kPsi);
}

TEST(MemoryEstimate, AdagradAndLionKeepOneStateTensor) {
  for (const char* type : {"Adagrad", "Lion"}) {
    auto c = make_config(2, true, "cpu");
    c.optimizer.type = config::parse_config(
        config::Json{{"train_batch_size", 8}, {"optimizer", {{"type", type}}}}, "<test>", 4).optimizer.type;
    EXPECT_EQ(estimate(c).host_optimizer, 8 * kPsi / 4) << type;  // fp32 master + sum (Adagrad) or momentum (Lion)
    c.zero.offload_optimizer.device = "none";
    EXPECT_EQ(estimate(c).optimizer, 8 * kPsi / 4) << type;
  }
}

TEST(MemoryEstimate, OffloadMovesTheOptimizerAndItsGradientsToTheHost) {
  const auto e = estimate(make_config(2, true, "cpu"));
  EXPECT_EQ(e.device_total(), 2 * kPsi);  // DeepSpeed's 2Ψ with offload
  EXPECT_EQ(e.host_optimizer, 12 * kPsi / 4);
  EXPECT_EQ(e.host_gradients, 2 * kPsi / 4);         // bf16, where the gradients land
  EXPECT_EQ(e.host_transfer, 2 * kPsi / 4);          // 16-bit copies (no accumulation: no landing area)
  // Stage 1 reduces once per window, straight into the shard: no landing area.
  EXPECT_EQ(estimate(make_config(1, true, "cpu")).host_transfer, 2 * kPsi / 4);
}

TEST(MemoryEstimate, HostAccumulationNeedsALandingArea) {
  ::setenv("DS_OFFLOAD_GRAD_ACCUMULATION", "host", 1);
  const auto e = estimate(make_config(2, true, "cpu", 1.0, 500'000'000, 4));
  ::unsetenv("DS_OFFLOAD_GRAD_ACCUMULATION");
  EXPECT_EQ(e.host_transfer, (2 + 2) * kPsi / 4);  // 16-bit copies + the later micro-steps' landing area
  EXPECT_EQ(e.device_total(), 2 * kPsi);
}

TEST(MemoryEstimate, OffloadParamKeepsTheWeightShardOnTheHost) {
  auto c = make_config(3, true, "cpu");
  c.zero.offload_param.device = "cpu";
  const auto e = estimate_model_states(c, ModelShape{{kPsi}, kPsi / 8}, 4);
  EXPECT_EQ(e.weights, 2 * (kPsi / 8));  // the largest unit, gathered
  EXPECT_EQ(e.host_weights, 2 * kPsi / 4);
  EXPECT_EQ(e.host_transfer, 0);         // the optimizer writes the 16-bit weights into the shard itself
  EXPECT_EQ(e.host_total(), (2 + 12 + 2) * kPsi / 4);
}

// super_offload speculates only where clipping would make the CPU Adam wait, and backs up 12 bytes for a
// quarter of the host elements (step_speculation.h).
TEST(MemoryEstimate, SuperOffloadBacksUpAQuarterOfTheHostStateWhenClipping) {
  auto c = make_config(2, true, "cpu");
  c.zero.offload_optimizer.super_offload = true;
  EXPECT_EQ(estimate(c).host_speculation, 0);  // no clipping: the updates run during backward anyway
  c.gradient_clipping = 1.0;
  const auto e = estimate(c);
  EXPECT_EQ(e.host_speculation, 12 * (kPsi / 4) / 4);
  EXPECT_EQ(e.host_total(), (12 + 2 + 2 + 3) * kPsi / 4);
  auto half = make_config(2, true, "cpu", 0.5, kPsi / 2);  // two tensors, two buckets, the first on the host
  half.zero.offload_optimizer.super_offload = true;
  half.gradient_clipping = 1.0;
  EXPECT_EQ(estimate_model_states(half, ModelShape{{kPsi / 2, kPsi / 2}, 0}, 4).host_speculation,
            12 * (kPsi / 8) / 4);
  auto fp32 = make_config(2, false, "cpu");  // no 16-bit copies: the optimizer's own step, no speculation
  fp32.zero.offload_optimizer.super_offload = true;
  fp32.gradient_clipping = 1.0;
  EXPECT_EQ(estimate(fp32).host_speculation, 0);
}

TEST(MemoryEstimate, OffloadAccumulatesOnTheDeviceWithGradientAccumulation) {
  // Stages 2-3 with GAS > 1 sum a window's micro-steps in a device buffer (2Ψ/N) instead of a host landing area.
  for (int stage : {2, 3}) {
    const auto one = estimate(make_config(stage, true, "cpu"));
    const auto e = estimate(make_config(stage, true, "cpu", 1.0, 500'000'000, 4));
    EXPECT_EQ(e.gradients, one.gradients + 2 * kPsi / 4) << "stage " << stage;
    EXPECT_EQ(e.host_transfer, 2 * kPsi / 4) << "stage " << stage;  // the 16-bit copies only
    EXPECT_EQ(e.host_gradients, one.host_gradients) << "stage " << stage;
  }
  // Stage 1 accumulates in its full buffer anyway.
  EXPECT_EQ(estimate(make_config(1, true, "cpu", 1.0, 500'000'000, 4)).device_total(),
            estimate(make_config(1, true, "cpu")).device_total());
}

TEST(MemoryEstimate, FlatGroupsArePlannedOnTheirOwn) {
  // The same two tensors as one group (two buckets: the second's midpoint is past 0.6, it stays on the device)
  // and as two groups (ZeRO-3 units: each one bucket whose midpoint, 0.5, is inside 0.6: both offloaded).
  const auto c = make_config(3, true, "cpu", 0.6, kPsi / 2);
  ModelShape one{{kPsi / 2, kPsi / 2}, 0};
  ModelShape two = one;
  two.groups = {{kPsi / 2}, {kPsi / 2}};
  EXPECT_EQ(estimate_model_states(c, one, 4).host_optimizer, 12 * kPsi / 8);
  EXPECT_EQ(estimate_model_states(c, two, 4).host_optimizer, 12 * kPsi / 4);
}

TEST(MemoryEstimate, HostMemoryShortfallNamesTheKeyAndTheFigures) {
  // Stage 2, full offload, 4 ranks on the node: each holds 12Ψ/4 + 2Ψ/4 + 2Ψ/4 = 4Ψ bytes on the host.
  const auto c = make_config(2, true, "cpu");
  const ModelShape shape{{kPsi}, 0};
  const std::int64_t node = 4 * 4 * kPsi;
  EXPECT_FALSE(host_memory_shortfall(c, shape, 4, 4, node));
  EXPECT_FALSE(host_memory_shortfall(c, shape, 4, 4, -1));  // unknown: no check
  const auto error = host_memory_shortfall(c, shape, 4, 4, node - 1);
  ASSERT_TRUE(error);
  EXPECT_NE(error->find("<test>: zero_optimization.offload_optimizer: the 4 rank(s) on this node need " + gib(node)),
            std::string::npos) << *error;
  EXPECT_NE(error->find("lower offload_optimizer.ratio"), std::string::npos) << *error;
  // Parameter offload alone: the 16-bit shards, named by their own key.
  auto params = make_config(3, true);
  params.zero.offload_param.device = "cpu";
  const auto param_error = host_memory_shortfall(params, shape, 4, 4, 4 * 2 * kPsi / 4 - 1);
  ASSERT_TRUE(param_error);
  EXPECT_NE(param_error->find("zero_optimization.offload_param:"), std::string::npos) << *param_error;
  EXPECT_FALSE(host_memory_shortfall(make_config(2, true), shape, 4, 4, 0));  // nothing offloaded
  // What a rank holds already is no longer available, and no longer needed.
  EXPECT_FALSE(host_memory_shortfall(c, shape, 4, 4, node - 4 * 100, 100));
  EXPECT_TRUE(host_memory_shortfall(c, shape, 4, 4, node - 4 * 100 - 1, 100));
}

TEST(MemoryEstimate, PartialOffloadRoundsToWholeBuckets) {
  // Four tensors of Ψ/4 in four buckets (each rank's chunk Ψ/16): ratio 0.5 puts the first two on the host,
  // and so does 0.4 (rounded to whole buckets: the second bucket's midpoint is at 3/8 of the shard).
  const ModelShape quarters{{kPsi / 4, kPsi / 4, kPsi / 4, kPsi / 4}, 0};
  const auto e = estimate_model_states(make_config(2, true, "cpu", 0.5, kPsi / 4), quarters, 4);
  EXPECT_EQ(estimate_model_states(make_config(2, true, "cpu", 0.4, kPsi / 4), quarters, 4).host_optimizer,
            e.host_optimizer);
  EXPECT_EQ(e.host_optimizer, 12 * (kPsi / 8));
  EXPECT_EQ(e.optimizer, 12 * (kPsi / 8));
  EXPECT_EQ(e.gradients, 2 * (kPsi / 8));
}

TEST(MemoryEstimate, LandingLeadIsTheReducersBoundOnHostBoundSendBuffers) {
  // kLandingLeadBytes, unless two of the largest host buckets are more; never more than all of the host buckets
  // together; none at stage 1 (no send buffers: the full gradient is cast and reduced) or without offload.
  const std::int64_t psi = 400'000'000;  // bf16: 800 MB of gradients
  const ModelShape one{{psi}, 0};
  const ModelShape quarters{{psi / 4, psi / 4, psi / 4, psi / 4}, 0};  // four buckets of 200 MB
  EXPECT_EQ(estimate_model_states(make_config(2, true, "cpu", 1.0, psi / 4), quarters, 4).landing_lead,
            kLandingLeadBytes);  // two buckets (400 MB) are less than the floor, all four (800 MB) more
  EXPECT_EQ(estimate_model_states(make_config(2, true, "cpu", 0.5, psi / 4), quarters, 4).landing_lead,
            2 * 2 * (psi / 4));  // the two host buckets are all there is
  EXPECT_EQ(estimate_model_states(make_config(2, true, "cpu", 1.0), one, 4).landing_lead, 2 * psi);
  EXPECT_EQ(estimate_model_states(make_config(1, true, "cpu"), one, 4).landing_lead, 0);
  EXPECT_EQ(estimate_model_states(make_config(2, true), one, 4).landing_lead, 0);
}

TEST(MemoryEstimate, ReductionsInFlightHoldTheLargestDeviceBucketsSendBuffers) {
  // Several ranks, stage 2: kReductionsInFlight buckets reducing plus the one being launched, each a bucket-
  // sized send buffer and this rank's chunk of the result; buckets on the host are the landing lead's instead.
  const std::int64_t psi = 400'000'000;
  const ModelShape quarters{{psi / 4, psi / 4, psi / 4, psi / 4}, 0};
  const std::int64_t per_bucket = 2 * (psi / 4) + 2 * (psi / 4 / 4);
  const auto in_flight = static_cast<std::int64_t>(kReductionsInFlight + 1);
  EXPECT_EQ(estimate_model_states(make_config(2, true, "none", 1.0, psi / 4), quarters, 4).reductions_in_flight,
            in_flight * per_bucket);
  EXPECT_EQ(estimate_model_states(make_config(2, true, "cpu", 0.5, psi / 4), quarters, 4).reductions_in_flight,
            2 * per_bucket);  // two of the four buckets stay on the device
  EXPECT_EQ(estimate_model_states(make_config(2, true, "cpu", 1.0, psi / 4), quarters, 4).reductions_in_flight, 0);
  EXPECT_EQ(estimate_model_states(make_config(2, true, "none", 1.0, psi / 4), quarters, 1).reductions_in_flight, 0);
  // Never more than all of the device buckets: one bucket is one reduction.
  EXPECT_EQ(estimate_model_states(make_config(2, true, "none", 1.0), quarters, 4).reductions_in_flight,
            2 * psi + 2 * (psi / 4));
}

// A GPT-style decoder's parameters as the examples build it, and its activations in closed form.
TEST(ActivationEstimate, TransformerCountsMatchTheClosedForm) {
  TransformerShape t;
  t.layers = 50, t.hidden = 4096, t.seq = 1024, t.vocab = 50304, t.micro_batch = 8;
  EXPECT_EQ(t.parameters(), 10279239680);  // what examples/gpt2 prints for its 10B preset
  EXPECT_EQ(t.block_parameters(), 12 * 4096 * 4096 + 13 * 4096);
  const std::int64_t e = 8 * 1024 * 4096 * 2;  // one bf16 activation of the residual width
  const std::int64_t logits = 8 * 1024 * 50304 * 2;
  t.checkpointing = true;
  auto a = estimate_activations(t);
  EXPECT_EQ(a.saved, 50 * e);
  EXPECT_EQ(a.head, 2 * logits + 2 * e);
  EXPECT_EQ(a.forward_peak(), 50 * e + 2 * logits + 2 * e);
  EXPECT_EQ(a.backward_peak(), a.forward_peak());  // the head outweighs one recomputed block (26 E)
  t.checkpointing = false;
  a = estimate_activations(t);
  EXPECT_EQ(a.saved, 50 * 18 * e);
  EXPECT_EQ(a.block, 8 * e);
  t.element_bytes = 4;
  EXPECT_EQ(estimate_activations(t).saved, 2 * a.saved);
}

}  // namespace
}  // namespace deepspeed::zero
