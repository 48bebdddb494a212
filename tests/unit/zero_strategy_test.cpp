// The ZeRO layouts (zero::Strategy) driven directly, without the engine, on in-process Gloo ranks: each stage
// trains like one process on the global batch; ZeRO-3 units are empty outside a gather and take edits; sharded
// checkpoints re-cut to another world size.
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/nn/functional/loss.h>
#include <torch/nn/modules/linear.h>

#include "deepspeed/checkpoint/files.h"
#include "deepspeed/optim/cpu_adam.h"
#include "deepspeed/optim/optimizer.h"
#include "deepspeed/zero/reshard.h"
#include "deepspeed/zero/strategy.h"
#include "deepspeed/zero/unit.h"
#include "tests/support/loopback_ranks.h"

namespace deepspeed::zero {
namespace {

constexpr int kMicro = 2;
constexpr double kLr = 0.1;

// fc1 and fc2 are ZeRO-3 units; `gain` belongs to none (the root). Sizes divide by neither 2 nor 3.
struct NetImpl : torch::nn::Module {
  NetImpl() {
    fc1 = register_module("fc1", torch::nn::Linear(7, 13));
    fc2 = register_module("fc2", torch::nn::Linear(13, 5));
    gain = register_parameter("gain", at::ones({3}));
    unit1 = Unit(fc1);
    unit2 = Unit(fc2);
    at::NoGradGuard no_grad;
    double k = 0;
    for (auto& p : parameters()) p.copy_((at::arange(p.numel(), at::kFloat) * 0.37 + ++k).sin().reshape(p.sizes()) * 0.4);
  }
  at::Tensor forward(const at::Tensor& x) { return unit2(at::tanh(unit1(x))) * gain.sum() / 3.0; }
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
  at::Tensor gain;
  Unit unit1, unit2;
};
TORCH_MODULE(Net);

at::Tensor inputs(std::int64_t rows) { return (at::arange(rows * 7, at::kFloat).reshape({rows, 7}) * 0.13).sin(); }
at::Tensor targets(std::int64_t rows) { return (at::arange(rows * 5, at::kFloat).reshape({rows, 5}) * 0.29).cos(); }

config::Config make_config(int stage, int world_size, int gas, const std::string& optimizer, double offload = -1,
                           bool bf16 = false, bool super_offload = false) {
  config::Json json = {{"train_micro_batch_size_per_gpu", kMicro},
                       {"gradient_accumulation_steps", gas},
                       {"optimizer", {{"type", optimizer}, {"params", {{"lr", kLr}}}}},
                       {"zero_allow_untested_optimizer", true},
                       {"zero_optimization",
                        {{"stage", stage}, {"reduce_bucket_size", 40}, {"stage3_param_persistence_threshold", 0}}}};
  if (offload >= 0) json["zero_optimization"]["offload_optimizer"] = {{"device", "cpu"}, {"ratio", offload}};
  if (super_offload) json["zero_optimization"]["offload_optimizer"]["super_offload"] = true;
  if (bf16) json["bf16"] = {{"enabled", true}};
  return config::parse_config(json, "<test>", world_size);
}

// A layout and its optimizer over one rank's copy of the model.
struct Job {
  Net net;
  std::unique_ptr<Strategy> zero;
  std::unique_ptr<optim::Optimizer> optimizer;

  at::ScalarType dtype = at::kFloat;

  Job(const config::Config& c, const std::shared_ptr<comm::Communicator>& comm) {
    if (c.bf16.enabled) {
      dtype = at::kBFloat16;
      net->to(dtype);
    }
    zero = make_strategy(c, {net->parameters()}, net.ptr(), comm);
    optimizer = optim::make_optimizer(c.optimizer, {optim::ParamGroup{zero->optimizer_params().at(0), {}, {}}},
                                      c.zero.offload_optimizer.device == "cpu");
  }

  // What the engine does for one optimizer step of `gas` micro-steps on this rank's rows of `step`'s data.
  // `factor`: the gradient factor the engine would give the optimizer (unscaling, clipping).
  void train_step(int step, int gas, const comm::Communicator& comm, double factor = 1.0) {
    const std::int64_t global = std::int64_t{kMicro} * gas * comm.world_size();
    const auto x = inputs((step + 1) * global).to(dtype), y = targets((step + 1) * global).to(dtype);
    for (int m = 0; m < gas; ++m) {
      const std::int64_t start = step * global + (std::int64_t{m} * comm.world_size() + comm.rank()) * kMicro;
      zero->begin_forward();
      auto loss = torch::nn::functional::mse_loss(net(x.slice(0, start, start + kMicro)), y.slice(0, start, start + kMicro)) / gas;
      zero->begin_backward(/*boundary=*/m == gas - 1);
      loss.backward();
      zero->end_backward();
    }
    zero->optimizer_gradients();
    if (factor != 1.0) optimizer->take_gradient_scale(factor);
    optimizer->step();
    zero->after_optimizer_step();
    zero->end_step();
  }

  // Every parameter whole, flattened in registration order (the units gathered one at a time).
  at::Tensor weights() {
    std::vector<at::Tensor> parts(net->parameters().size());
    const auto params = net->parameters();
    for (std::size_t u = 0; u < zero->num_units(); ++u) {
      zero->gather(u);
      for (std::size_t i = 0; i < params.size(); ++i) {
        if (zero->unit_of(params[i]) == u) parts[i] = params[i].detach().reshape(-1).clone();
      }
      zero->release(u);
    }
    return at::cat(parts);
  }
};

// One process, plain SGD on the whole global batch of each step.
at::Tensor reference_weights(int steps, std::int64_t global_batch) {
  Net net;
  const auto x = inputs(steps * global_batch), y = targets(steps * global_batch);
  for (int s = 0; s < steps; ++s) {
    net->zero_grad();
    torch::nn::functional::mse_loss(net(x.slice(0, s * global_batch, (s + 1) * global_batch)),
                                    y.slice(0, s * global_batch, (s + 1) * global_batch))
        .backward();
    at::NoGradGuard no_grad;
    for (auto& p : net->parameters()) p.sub_(p.grad() * kLr);
  }
  std::vector<at::Tensor> flat;
  for (auto& p : net->parameters()) flat.push_back(p.detach().reshape(-1));
  return at::cat(flat);
}

// What the engine does with CPU Adam and an offloaded layout: the 16-bit copies registered, the host steps run
// by the layout in `mode`. `before_scale` runs where the layout asks for the step's gradient factor;
// `ranges`, when given, counts the host ranges stepped speculatively (with a backup).
optim::CpuAdam& use_cpu_adam_host_steps(Job& job, HostStepMode mode, std::function<void()> before_scale = {},
                                        std::atomic<int>* ranges = nullptr) {
  auto* adam = dynamic_cast<optim::CpuAdam*>(job.optimizer.get());
  if (adam == nullptr) throw std::logic_error("the job's optimizer is not CPU Adam");
  const auto copies = job.zero->optimizer_param_copies();
  for (std::size_t g = 0; g < copies.size(); ++g) {
    for (std::size_t i = 0; i < copies[g].size(); ++i) {
      if (copies[g][i].defined()) adam->set_param_copy(g, i, copies[g][i]);
    }
  }
  job.zero->fused_cpu_optimizer(true);
  HostStepper stepper{
      [adam] { adam->begin_host_step(); },
      [adam, before_scale] {
        if (before_scale) before_scale();
        return adam->host_gradient_scale();
      },
      [adam, ranges](std::size_t g, std::size_t i, std::int64_t offset, std::int64_t numel, const at::Tensor& grad,
                     float scale, float* backup) {
        adam->step_host_range(g, i, offset, numel, grad, scale, backup);
        if (backup != nullptr && ranges != nullptr) ++*ranges;
      },
      [adam](std::size_t g, std::size_t i, std::int64_t offset, std::int64_t numel, const float* backup) {
        adam->restore_host_range(g, i, offset, numel, backup);
      }};
  if (!job.zero->use_host_stepper(std::move(stepper), mode)) throw std::logic_error("the layout took no host stepper");
  adam->set_external_host_steps(true);
  return *adam;
}

TEST(Strategy, EveryStageTrainsLikeOneProcess) {
  constexpr int kSteps = 3, kGas = 2;
  for (int stage : {0, 1, 2, 3}) {
    for (int ws : {1, 2, 3}) {
      const at::Tensor expected = reference_weights(kSteps, std::int64_t{kMicro} * kGas * ws);
      testing::run_ranks(ws, [&](const std::shared_ptr<comm::Communicator>& comm) {
        Job job(make_config(stage, ws, kGas, "SGD"), comm);
        for (int s = 0; s < kSteps; ++s) job.train_step(s, kGas, *comm);
        const at::Tensor got = job.weights();
        const double err = ((got - expected).abs().max() / expected.abs().max()).item<double>();
        EXPECT_LT(err, 1e-5) << "stage " << stage << ", " << ws << " ranks, rank " << comm->rank();
      });
    }
  }
}

TEST(Strategy, OffloadedStagesTrainLikeOneProcess) {
  // The offloaded buckets' masters, state and gradients on the host (here the host is also the compute
  // device, but every offload path runs: pieces, landing thread, host fold), the rest on the "device". One
  // rank too, where a reduce-scatter and an all-gather are copies the layouts skip.
  constexpr int kSteps = 3, kGas = 2;
  for (int ranks : {1, 2}) {
    const at::Tensor expected = reference_weights(kSteps, std::int64_t{kMicro} * kGas * ranks);
    for (int stage : {1, 2, 3}) {
      for (double ratio : {0.5, 1.0}) {
        testing::run_ranks(ranks, [&](const std::shared_ptr<comm::Communicator>& comm) {
          Job job(make_config(stage, ranks, kGas, "SGD", ratio), comm);
          bool split = false;
          for (const auto& group : job.zero->optimizer_params()) split = split || group.size() > 1;
          if (ratio < 1 && stage < 3) EXPECT_TRUE(split) << "ratio " << ratio << " left every group whole";
          for (int s = 0; s < kSteps; ++s) job.train_step(s, kGas, *comm);
          const at::Tensor got = job.weights();
          const double err = ((got - expected).abs().max() / expected.abs().max()).item<double>();
          EXPECT_LT(err, 1e-5) << "stage " << stage << ", ratio " << ratio << ", rank " << comm->rank() << " of " << ranks;
          EXPECT_GT(job.zero->host_bytes(), 0);
        });
      }
    }
  }
}

// ZeRO-Offload's speculation (HostStepMode::kSpeculative): host buckets updated during backward with factor 1,
// kept when the step's factor is 1 and undone and redone when it is not (0.5, as clipping would give), end
// bit-identical to the updates made after the step (kAfterStep). A step after one that clipped does not
// speculate. Where a step speculates, the factor is handed to the layout only once a speculative range has
// run, so what is exercised does not depend on the threads' timing.
TEST(Strategy, SpeculativeHostStepsEqualTheStepsAfterBackward) {
  constexpr int kGas = 2, kRanks = 2;
  const std::vector<double> factors = {1.0, 0.5, 1.0, 1.0, 0.5};
  const std::vector<bool> speculative_step = {true, true, false, true, true};
  const int kSteps = static_cast<int>(factors.size());
  for (int stage : {1, 2, 3}) {
    testing::run_ranks(kRanks, [&](const std::shared_ptr<comm::Communicator>& comm) {
      std::map<HostStepMode, at::Tensor> weights;
      for (const auto mode : {HostStepMode::kAfterStep, HostStepMode::kSpeculative}) {
        Job job(make_config(stage, kRanks, kGas, "AdamW", 1.0, /*bf16=*/true), comm);
        std::atomic<int> speculative_ranges{0};
        int step = 0;
        const bool speculates = mode == HostStepMode::kSpeculative;
        use_cpu_adam_host_steps(
            job, mode,
            [&] {
              while (speculates && speculative_step[step] && speculative_ranges.load() == 0) std::this_thread::yield();
            },
            &speculative_ranges);
        for (step = 0; step < kSteps; ++step) {
          speculative_ranges = 0;
          job.train_step(step, kGas, *comm, factors[step]);
          if (speculates && !speculative_step[step]) EXPECT_EQ(speculative_ranges.load(), 0) << "step " << step;
        }
        weights[mode] = job.weights();
        const auto [speculated, rolled_back] = job.zero->speculation_counts();
        EXPECT_EQ(speculated, speculates ? 4 : 0) << "stage " << stage;
        EXPECT_EQ(rolled_back, speculates ? 2 : 0) << "stage " << stage;
      }
      EXPECT_TRUE(at::equal(weights[HostStepMode::kAfterStep], weights[HostStepMode::kSpeculative]))
          << "stage " << stage << ", rank " << comm->rank();
    });
  }
}

// super_offload at stages 1-2 with units: a step whose host updates wait for the gradient norm leaves the
// units' weights for their next forward to write back. Right after each step fc1 (unit 1's buckets only) still
// holds what the step's own forward used: the previous step's weights of the same run writing everything back
// at the step. The run ends with that run's weights and, saved right after its last step, its masters, bitwise.
// (Nothing gathers between the steps: a gather writes everything back.)
TEST(Strategy, WriteBackBehindTheForwardEqualsTheWriteBackAtTheStep) {
  constexpr int kGas = 2, kSteps = 4;
  for (int ranks : {1, 2}) {
    for (int stage : {1, 2}) {
      testing::run_ranks(ranks, [&](const std::shared_ptr<comm::Communicator>& comm) {
        std::map<bool, std::vector<at::Tensor>> fc1;  // super_offload → fc1 at the start, then after every step
        std::map<bool, at::Tensor> weights, masters;  // super_offload → after the last step
        for (const bool super_offload : {false, true}) {
          Job job(make_config(stage, ranks, kGas, "AdamW", 1.0, /*bf16=*/true, super_offload), comm);
          use_cpu_adam_host_steps(job, HostStepMode::kAfterStep);
          fc1[super_offload].push_back(job.net->fc1->weight.detach().clone());
          for (int s = 0; s < kSteps; ++s) {
            job.train_step(s, kGas, *comm, s % 2 == 1 ? 0.5 : 1.0);
            fc1[super_offload].push_back(job.net->fc1->weight.detach().clone());
          }
          checkpoint::SaveTarget target;
          job.zero->save(target);
          masters[super_offload] = target.rank_states.at("fp32_flat_groups").toList().get(0).toTensor().clone();
          weights[super_offload] = job.weights();
        }
        for (int s = 1; s <= kSteps; ++s) {
          EXPECT_FALSE(at::equal(fc1[false][s], fc1[false][s - 1])) << "stage " << stage << ", step " << s;
          EXPECT_TRUE(at::equal(fc1[true][s], fc1[false][s - 1])) << "stage " << stage << ", step " << s;
        }
        EXPECT_TRUE(at::equal(weights[false], weights[true])) << "stage " << stage << ", rank " << comm->rank();
        EXPECT_TRUE(at::equal(masters[false], masters[true])) << "stage " << stage << ", rank " << comm->rank();
      });
    }
  }
}

TEST(Strategy, PartitionedUnitsAreEmptyOutsideAGatherAndAdoptEdits) {
  testing::run_ranks(2, [&](const std::shared_ptr<comm::Communicator>& comm) {
    Job job(make_config(3, 2, 1, "SGD"), comm);
    const at::Tensor initial = Net()->fc1->weight.detach().clone();
    auto& weight = job.net->fc1->weight;
    EXPECT_EQ(weight.numel(), 0);            // partitioned
    EXPECT_EQ(job.net->gain.numel(), 3);     // the root stays whole
    const std::size_t u = job.zero->unit_of(weight);
    EXPECT_NE(u, 0u);
    const auto gathers = job.zero->unit_gathers();
    job.zero->gather(u);
    EXPECT_GT(job.zero->unit_gathers(), gathers);
    EXPECT_TRUE(at::equal(weight.detach(), initial));
    {
      at::NoGradGuard no_grad;
      weight.fill_(0.5);
    }
    job.zero->adopt_parameter_values(u);  // into this rank's shard and fp32 master
    job.zero->release(u);
    EXPECT_EQ(weight.numel(), 0);
    // A step with zero gradients writes the masters back: the edit survives only if the masters took it.
    job.zero->optimizer_gradients();
    job.zero->after_optimizer_step();
    job.zero->end_step();
    job.zero->gather(u);
    EXPECT_TRUE(at::equal(weight.detach(), at::full_like(initial, 0.5)));
    job.zero->release(u);
  });
}

// bf16 with FusedAdam: when the optimizer says it up-casts (Optimizer::upcasts_gradients), the layout hands
// over its 16-bit gradient buffers instead of fp32 copies, and three steps with clipping factors land on the
// same weights, bitwise, at every stage, and with DeepSpeedCPUAdam under a partial offload too.
TEST(Strategy, SixteenBitGradientsHandedToAnUpcastingOptimizerGiveTheSameWeights) {
  for (const auto& [stage, offload] : std::vector<std::pair<int, double>>{{0, -1}, {1, -1}, {2, -1}, {3, -1}, {2, 0.5}}) {
    std::map<bool, at::Tensor> weights;  // up-casting → rank 0's weights
    for (const bool upcasts : {false, true}) {
      testing::run_ranks(2, [&](const std::shared_ptr<comm::Communicator>& comm) {
        Job job(make_config(stage, 2, 2, "AdamW", offload, /*bf16=*/true), comm);
        ASSERT_TRUE(job.optimizer->upcasts_gradients());
        job.zero->optimizer_upcasts_gradients(upcasts);
        // A factor that changes from step to step: Adam's update does not see a constant one.
        for (int step = 0; step < 3; ++step) job.train_step(step, 2, *comm, /*factor=*/0.3 + 0.35 * step);
        // What the next step's optimizer would read: some 16-bit buffer exactly when it up-casts (stage 0 with
        // bf16 accumulates in fp32 by default: nothing to copy either way).
        job.zero->begin_forward();
        const auto x = inputs(kMicro).to(at::kBFloat16);
        job.zero->begin_backward(/*boundary=*/true);
        job.net(x).sum().backward();
        job.zero->end_backward();
        bool sixteen = false;
        for (const auto& g : job.zero->optimizer_gradients()) sixteen |= g.defined() && g.scalar_type() == at::kBFloat16;
        EXPECT_EQ(sixteen, upcasts && stage > 0) << "stage " << stage;
        job.zero->end_step();
        const at::Tensor w = job.weights();
        if (comm->rank() == 0) weights[upcasts] = w;
      });
    }
    EXPECT_TRUE(at::equal(weights[true], weights[false])) << "stage " << stage << ", offload ratio " << offload;
  }
}

// Save a stage-2 job on 2 ranks after an AdamW step, load it on 3: the weights and, per parameter, the
// optimizer state come back exactly.
TEST(Strategy, ShardedCheckpointLoadsOnAnotherWorldSize) {
  const auto dir = std::filesystem::temp_directory_path() / ("zero_strategy_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::mutex mutex;
  std::map<int, std::vector<at::Tensor>> exp_avg;  // world size → every rank's exp_avg shard of group 0
  at::Tensor saved_weights;
  auto record = [&](int ws, Job& job, const comm::Communicator& comm) {
    const auto state = job.optimizer->state_dict().toGenericDict().at("state").toGenericDict();
    std::lock_guard<std::mutex> lock(mutex);
    exp_avg[ws].resize(ws);
    exp_avg[ws][comm.rank()] = state.at(0).toGenericDict().at("exp_avg").toTensor();
  };
  testing::run_ranks(2, [&](const std::shared_ptr<comm::Communicator>& comm) {
    Job job(make_config(2, 2, 1, "AdamW"), comm);
    job.train_step(0, 1, *comm);
    checkpoint::SaveTarget target;
    job.zero->save(target);
    job.zero->save_optimizer_state(target, [&] { return job.optimizer->state_dict(); });
    if (comm->rank() == 0) {
      checkpoint::save_ivalue(target.model_states, (dir / checkpoint::model_states_name()).string());
      saved_weights = job.weights();
    }
    auto file = checkpoint::new_dict();
    file.insert("optimizer_state_dict", target.rank_states);
    checkpoint::save_ivalue(file, (dir / checkpoint::optim_states_name(comm->rank(), false)).string());
    record(2, job, *comm);
  });
  testing::run_ranks(3, [&](const std::shared_ptr<comm::Communicator>& comm) {
    Job job(make_config(2, 3, 1, "AdamW"), comm);
    checkpoint::LoadSource source(dir.string());
    job.zero->load(source, checkpoint::LoadOptions{});
    job.optimizer->load_state_dict(job.zero->load_optimizer_state(source));
    EXPECT_TRUE(at::equal(job.weights(), saved_weights)) << "rank " << comm->rank();
    record(3, job, *comm);
  });
  for (const auto& entry : std::filesystem::directory_iterator(dir)) std::filesystem::remove(entry.path());
  std::filesystem::remove(dir);  // (remove_all crashes in programs linked with LibTorch's wheel: files.cpp)
  // Group 0's exp_avg, reassembled per parameter from either world's shards, is the same.
  Net net;
  std::vector<std::int64_t> sizes;
  for (const auto& p : net->parameters()) sizes.push_back(p.numel());
  const auto full2 = unshard(exp_avg[2], plan_group(sizes, {40, kAlignment, 2}), sizes);
  const auto full3 = unshard(exp_avg[3], plan_group(sizes, {40, kAlignment, 3}), sizes);
  ASSERT_EQ(full2.size(), full3.size());
  for (std::size_t i = 0; i < full2.size(); ++i) {
    EXPECT_GT(full2[i].abs().sum().item<double>(), 0.0);
    EXPECT_TRUE(at::equal(full2[i], full3[i])) << "parameter " << i;
  }
}

}  // namespace
}  // namespace deepspeed::zero
