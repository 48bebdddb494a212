// BucketReducer in its three reductions and the per-tensor reference, on in-process Gloo ranks: the reduced
// gradients equal the closed-form average over ranks of what each rank's backward produced.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "deepspeed/comm/comms_logger.h"
#include "deepspeed/zero/flat_group.h"
#include "deepspeed/zero/grad_reducer.h"
#include "deepspeed/zero/host_memory.h"
#include "src/zero/landing_budget.h"
#include "tests/support/loopback_ranks.h"

namespace deepspeed::zero {
namespace {

const std::vector<std::vector<std::int64_t>> kShapes = {{7}, {13, 5}, {3}, {11}};  // no size divides by 2 or 3

// What rank r's micro-step m puts into parameter i's gradient: distinct everywhere, exact in fp32.
at::Tensor contribution(std::size_t i, int rank, int micro, at::IntArrayRef shape) {
  const auto n = c10::multiply_integers(shape);
  return (at::arange(static_cast<std::int64_t>(n), at::kFloat) * 0.25 + 1.0 + 10.0 * rank + 100.0 * micro +
          1000.0 * static_cast<double>(i))
      .reshape(shape);
}

// The average over ranks of the summed micro-steps: DeepSpeed's default averaging (predivide factor 1).
at::Tensor expected_gradient(std::size_t i, int world_size, int gas) {
  at::Tensor sum = at::zeros(kShapes[i]);
  for (int r = 0; r < world_size; ++r) {
    for (int m = 0; m < gas; ++m) sum += contribution(i, r, m, kShapes[i]);
  }
  return sum / world_size;
}

std::vector<at::Tensor> make_params() {
  std::vector<at::Tensor> params;
  for (const auto& shape : kShapes) params.push_back(at::zeros(shape).requires_grad_(true));
  return params;
}

// One accumulation window of `gas` micro-steps on this rank.
void backward_window(GradientReducer& reducer, const std::vector<at::Tensor>& params, int rank, int gas) {
  for (int m = 0; m < gas; ++m) {
    reducer.prepare_backward(/*boundary=*/m == gas - 1);
    at::Tensor loss = at::zeros({});
    for (std::size_t i = 0; i < params.size(); ++i) loss = loss + (params[i] * contribution(i, rank, m, kShapes[i])).sum();
    loss.backward();
    reducer.finish_backward();
  }
}

void check_bucket_reducer(Reduction reduction, int world_size, int gas) {
  testing::run_ranks(world_size, [&](const std::shared_ptr<comm::Communicator>& comm) {
    const bool shards = reduction != Reduction::kAllReduce;
    auto params = make_params();
    // 24-element buckets: the four parameters span several buckets, one parameter crosses chunk boundaries.
    auto groups = build_flat_groups({params}, FlatOptions{24, kAlignment, shards ? world_size : 1});
    ASSERT_EQ(groups.size(), 1u);
    ReducerOptions options;
    options.reduction = reduction;
    BucketReducer reducer({groups[0].get()}, comm, options, Placement::on_device(c10::Device(c10::kCPU)));
    ASSERT_GT(reducer.num_buckets(), 2u);
    backward_window(reducer, params, comm->rank(), gas);
    const at::Tensor got = reducer.gradients().at(0);
    at::NoGradGuard no_grad;
    at::Tensor full = at::zeros({groups[0]->plan.total_numel});
    for (std::size_t i = 0; i < params.size(); ++i) groups[0]->view_of(full, i).copy_(expected_gradient(i, world_size, gas));
    if (shards) {
      at::Tensor shard = at::zeros({groups[0]->plan.shard_numel});
      groups[0]->copy_own_chunks(full, shard, comm->rank());
      EXPECT_TRUE(at::allclose(got, shard, 1e-6, 1e-6)) << "rank " << comm->rank();
    } else {
      EXPECT_TRUE(at::allclose(got, full, 1e-6, 1e-6)) << "rank " << comm->rank();
      // The parameters' own .grad() are views of the reduced buffer (what an fp32 optimizer reads).
      for (std::size_t i = 0; i < params.size(); ++i) {
        EXPECT_TRUE(at::allclose(params[i].grad(), expected_gradient(i, world_size, gas), 1e-6, 1e-6));
      }
    }
    reducer.zero_grad();
    if (reduction != Reduction::kReduceScatterOnBoundary) {  // that one frees its shard until the next boundary
      EXPECT_EQ(reducer.gradients().at(0).abs().sum().item<double>(), 0.0);
    }
  });
}

TEST(BucketReducer, AllReduceAveragesFullGradients) {
  for (int ws : {2, 3}) {
    for (int gas : {1, 3}) check_bucket_reducer(Reduction::kAllReduce, ws, gas);
  }
}

TEST(BucketReducer, ReduceScatterOnBoundaryKeepsThisRanksChunks) {
  for (int ws : {1, 2, 3}) {
    for (int gas : {1, 3}) check_bucket_reducer(Reduction::kReduceScatterOnBoundary, ws, gas);
  }
}

TEST(BucketReducer, ReduceScatterEachMicroStepAccumulatesInTheShard) {
  for (int ws : {1, 2, 3}) {
    for (int gas : {1, 3}) check_bucket_reducer(Reduction::kReduceScatterEachMicroStep, ws, gas);
  }
}

// One rank, reducing every micro-step: a bucket has nothing to wait for, so it is folded into the shard (and its
// send buffer freed) as soon as its last gradient is in, not at finish_backward() (on one GPU the buckets
// otherwise all stay alive to the end of backward: the whole gradient once more).
TEST(BucketReducer, OneRankFoldsEachBucketAsSoonAsItIsComplete) {
  testing::run_ranks(1, [&](const std::shared_ptr<comm::Communicator>& comm) {
    auto params = make_params();
    auto groups = build_flat_groups({params}, FlatOptions{24, kAlignment, 1});
    ReducerOptions options;
    options.reduction = Reduction::kReduceScatterEachMicroStep;
    BucketReducer reducer({groups[0].get()}, comm, options, Placement::on_device(c10::Device(c10::kCPU)));
    // Buckets run in backward order: parameter 3 opens the first, parameter 0 shares the last with the end of
    // parameter 1; after 3, 2 and 1 only that one waits.
    ASSERT_EQ(groups[0]->plan.bucket_of[3], 0u);
    ASSERT_EQ(groups[0]->plan.bucket_of[0], reducer.num_buckets() - 1);
    ASSERT_GT(reducer.num_buckets(), 2u);
    reducer.prepare_backward(/*boundary=*/true);
    for (std::size_t i : {3u, 2u, 1u}) (params[i] * contribution(i, 0, 0, kShapes[i])).sum().backward();
    {
      at::NoGradGuard no_grad;
      const at::Tensor shard = reducer.gradients().at(0);
      EXPECT_TRUE(at::equal(groups[0]->view_of(shard, 3), contribution(3, 0, 0, kShapes[3]))) << "bucket not folded yet";
      EXPECT_EQ(groups[0]->view_of(shard, 0).abs().sum().item<double>(), 0.0) << "a bucket folded before it was complete";
    }
    (params[0] * contribution(0, 0, 0, kShapes[0])).sum().backward();
    reducer.finish_backward();
    at::NoGradGuard no_grad;
    for (std::size_t i = 0; i < params.size(); ++i) {
      EXPECT_TRUE(at::equal(groups[0]->view_of(reducer.gradients().at(0), i), expected_gradient(i, 1, 1))) << i;
    }
  });
}

TEST(BucketReducer, SeveralRanksFoldTheOldestReductionInOnceMoreAreInFlight) {
  // Two ranks, one reduction in flight: launching a bucket folds the one before it in (its send buffer freed
  // then), so after parameters 3, 2 and 1 every launched bucket but the newest is in the shard already, and
  // the newest is not. With 0 (every bucket held to finish_backward()) none would be.
  for (Reduction reduction : {Reduction::kReduceScatterEachMicroStep, Reduction::kReduceScatterOnBoundary}) {
    testing::run_ranks(2, [&](const std::shared_ptr<comm::Communicator>& comm) {
      auto params = make_params();
      auto groups = build_flat_groups({params}, FlatOptions{24, kAlignment, 2});
      const BucketPlan& plan = groups[0]->plan;
      ReducerOptions options;
      options.reduction = reduction;
      options.reductions_in_flight = 1;
      BucketReducer reducer({groups[0].get()}, comm, options, Placement::on_device(c10::Device(c10::kCPU)));
      ASSERT_GE(plan.buckets.size(), 3u);
      ASSERT_EQ(plan.bucket_of[0], plan.buckets.size() - 1);  // parameter 0 completes the last bucket
      at::Tensor full = at::zeros({plan.total_numel});
      for (std::size_t i = 0; i < params.size(); ++i) groups[0]->view_of(full, i).copy_(expected_gradient(i, 2, 1));
      at::Tensor expected = at::zeros({plan.shard_numel});
      groups[0]->copy_own_chunks(full, expected, comm->rank());
      auto chunk = [&](const at::Tensor& shard, std::size_t b) {
        return shard.narrow(0, plan.buckets[b].shard_offset, plan.buckets[b].chunk);
      };
      reducer.prepare_backward(/*boundary=*/true);
      for (std::size_t i : {3u, 2u, 1u}) (params[i] * contribution(i, comm->rank(), 0, kShapes[i])).sum().backward();
      {
        at::NoGradGuard no_grad;
        const std::size_t newest = plan.buckets.size() - 2;  // the last waits for parameter 0
        const at::Tensor shard = reducer.gradients().at(0);
        for (std::size_t b = 0; b < newest; ++b) {
          EXPECT_TRUE(at::allclose(chunk(shard, b), chunk(expected, b))) << "bucket " << b << " not folded in yet";
        }
        EXPECT_EQ(chunk(shard, newest).abs().sum().item<double>(), 0.0) << "the newest reduction folded in early";
      }
      (params[0] * contribution(0, comm->rank(), 0, kShapes[0])).sum().backward();
      reducer.finish_backward();
      EXPECT_TRUE(at::allclose(reducer.gradients().at(0), expected)) << "rank " << comm->rank();
    });
  }
}

// The comms logger attached to the communicator records exactly the reducer's bucket plan: one collective per
// bucket per reduction, its size the whole bucket (what nccl-tests calls the message size).
void check_logged_collectives(Reduction reduction, int world_size, int gas, int windows) {
  testing::run_ranks(world_size, [&](const std::shared_ptr<comm::Communicator>& comm) {
    config::CommsLoggerConfig options;
    options.enabled = true;
    options.debug = true;
    auto logger = std::make_shared<comm::CommsLogger>(options, comm->world_size(), comm->rank());
    comm->set_logger(logger);
    const bool shards = reduction != Reduction::kAllReduce;
    auto params = make_params();
    auto groups = build_flat_groups({params}, FlatOptions{24, kAlignment, shards ? world_size : 1});
    ReducerOptions reducer_options;
    reducer_options.reduction = reduction;
    BucketReducer reducer({groups[0].get()}, comm, reducer_options, Placement::on_device(c10::Device(c10::kCPU)));
    for (int w = 0; w < windows; ++w) {
      backward_window(reducer, params, comm->rank(), gas);
      reducer.zero_grad();
    }
    const int per_window = reduction == Reduction::kReduceScatterEachMicroStep ? gas : 1;
    std::map<std::int64_t, std::int64_t> expected;  // bytes → count
    for (const auto& bucket : groups[0]->plan.buckets) expected[bucket.numel * 4] += per_window * windows;
    const std::string op = shards ? "reduce_scatter_tensor" : "all_reduce";
    std::map<std::int64_t, std::int64_t> got;
    for (const auto& row : logger->summary()) {
      EXPECT_EQ(row.record, op + " | [Caller Func: BucketReducer]");
      got[row.bytes] += row.count;
      EXPECT_GE(row.avg_ms, 0.0);
    }
    EXPECT_EQ(got, expected) << "rank " << comm->rank();
    comm->set_logger(nullptr);
  });
}

TEST(BucketReducer, CommsLoggerCountsAndSizesFollowTheBucketPlan) {
  check_logged_collectives(Reduction::kAllReduce, 2, 3, 2);
  check_logged_collectives(Reduction::kReduceScatterEachMicroStep, 2, 3, 2);
  check_logged_collectives(Reduction::kReduceScatterOnBoundary, 3, 2, 2);
}

TEST(NaiveAllReduce, MatchesTheClosedForm) {
  testing::run_ranks(3, [&](const std::shared_ptr<comm::Communicator>& comm) {
    auto params = make_params();
    NaiveAllReduce reducer(params, comm, ReducerOptions{});
    backward_window(reducer, params, comm->rank(), 2);
    const auto grads = reducer.gradients();
    ASSERT_EQ(grads.size(), params.size());
    for (std::size_t i = 0; i < params.size(); ++i) {
      EXPECT_TRUE(at::allclose(grads[i], expected_gradient(i, 3, 2), 1e-6, 1e-6)) << "parameter " << i;
    }
  });
}

TEST(BucketReducer, UnusedParametersStillReduce) {
  // A parameter that takes no part in this backward has no gradient on any rank: its bucket is still launched
  // (by finish_backward) and comes back zero, so every rank issues the same collectives.
  testing::run_ranks(2, [&](const std::shared_ptr<comm::Communicator>& comm) {
    auto params = make_params();
    auto groups = build_flat_groups({params}, FlatOptions{24, kAlignment, 2});
    ReducerOptions options;
    options.reduction = Reduction::kReduceScatterEachMicroStep;
    BucketReducer reducer({groups[0].get()}, comm, options, Placement::on_device(c10::Device(c10::kCPU)));
    reducer.prepare_backward(true);
    (params[0] * 2.0).sum().backward();
    reducer.finish_backward();
    at::NoGradGuard no_grad;
    at::Tensor full = at::zeros({groups[0]->plan.total_numel});
    groups[0]->view_of(full, 0).fill_(2.0);
    at::Tensor shard = at::zeros({groups[0]->plan.shard_numel});
    groups[0]->copy_own_chunks(full, shard, comm->rank());
    EXPECT_TRUE(at::equal(reducer.gradients().at(0), shard));
  });
}

// A 16-bit model's gradients accumulate in an fp32 buffer; a window's first gradient of each parameter is
// copied in (the buffer is not zeroed between windows), and a parameter that gets none is zeroed at launch.
// Two windows with different parameters used in different micro-steps: nothing of the first window may leak
// into the second. Contributions are small multiples of 1/8: exact in bf16 and in every fp32 sum.
void check_bf16_windows(Reduction reduction) {
  testing::run_ranks(2, [&](const std::shared_ptr<comm::Communicator>& comm) {
    const int rank = comm->rank();
    std::vector<at::Tensor> params;
    for (const auto& shape : kShapes) params.push_back(at::zeros(shape, at::kBFloat16).requires_grad_(true));
    const bool shards = reduction != Reduction::kAllReduce;
    auto groups = build_flat_groups({params}, FlatOptions{24, kAlignment, shards ? 2 : 1});
    ReducerOptions options;
    options.reduction = reduction;
    options.accum_dtype = at::kFloat;
    BucketReducer reducer({groups[0].get()}, comm, options, Placement::on_device(c10::Device(c10::kCPU)));
    const auto c = [&](std::size_t i, int r, int m) {
      const auto n = c10::multiply_integers(kShapes[i]);
      return ((at::arange(n, at::kFloat).remainder(8) * 0.125) + r + 2.0 * m + 8.0 * static_cast<double>(i))
          .reshape(kShapes[i]);
    };
    // uses[m]: the parameters micro-step m's loss touches.
    const auto window = [&](const std::vector<std::vector<std::size_t>>& uses) {
      std::vector<at::Tensor> want;
      for (const auto& shape : kShapes) want.push_back(at::zeros(shape));
      for (std::size_t m = 0; m < uses.size(); ++m) {
        reducer.prepare_backward(/*boundary=*/m + 1 == uses.size());
        at::Tensor loss = at::zeros({}, at::kFloat);
        for (std::size_t i : uses[m]) {
          loss = loss + (params[i].to(at::kFloat) * c(i, rank, static_cast<int>(m))).sum();
          for (int r = 0; r < 2; ++r) want[i] += c(i, r, static_cast<int>(m)) / 2.0;
        }
        loss.backward();
        reducer.finish_backward();
      }
      at::NoGradGuard no_grad;
      at::Tensor full = at::zeros({groups[0]->plan.total_numel});
      for (std::size_t i = 0; i < params.size(); ++i) groups[0]->view_of(full, i).copy_(want[i]);
      at::Tensor expected = full;
      if (shards) {
        expected = at::zeros({groups[0]->plan.shard_numel});
        groups[0]->copy_own_chunks(full, expected, rank);
      }
      EXPECT_TRUE(at::equal(reducer.gradients().at(0), expected)) << "rank " << rank;
      reducer.zero_grad();
    };
    window({{0, 1, 2, 3}, {0, 1, 2, 3}});
    window({{0, 2}, {0, 1}});  // 1 only in the second micro-step, 2 only in the first, 3 unused
    window({{3}});             // everything but 3 unused
  });
}

TEST(BucketReducer, SixteenBitGradientsStartEachWindowAfresh) {
  check_bf16_windows(Reduction::kAllReduce);
  check_bf16_windows(Reduction::kReduceScatterOnBoundary);
}

// One rank, a window of one backward: the 16-bit gradients autograd made are kept as they are (no fp32 copy),
// with the same values the fp32 buffer would hold; anything else (a second backward in the window, gradient
// accumulation, several ranks, not allowed) goes through the buffer, and nothing leaks between windows.
TEST(BucketReducer, OneRankKeepsAWindowsOnlyGradientsAsTheyAre) {
  for (const int world : {1, 2}) {
    testing::run_ranks(world, [&](const std::shared_ptr<comm::Communicator>& comm) {
      std::vector<at::Tensor> params;
      for (const auto& shape : kShapes) params.push_back(at::zeros(shape, at::kBFloat16).requires_grad_(true));
      auto groups = build_flat_groups({params}, FlatOptions{24, kAlignment, 1});
      BucketReducer reducer({groups[0].get()}, comm, ReducerOptions{}, Placement::on_device(c10::Device(c10::kCPU)));
      reducer.allow_gradients_as_they_are(true);
      const auto c = [&](std::size_t i, int m) {  // exact in bf16 and in fp32 sums
        const auto n = c10::multiply_integers(kShapes[i]);
        return ((at::arange(n, at::kFloat).remainder(8) * 0.125) + 2.0 * m + 8.0 * static_cast<double>(i)).reshape(kShapes[i]);
      };
      // backwards[k]: the micro-steps (boundary last) and, per backward, the parameters its loss touches.
      const auto window = [&](const std::vector<std::vector<std::size_t>>& backwards, bool boundary_twice, bool kept) {
        std::vector<at::Tensor> want;
        for (const auto& shape : kShapes) want.push_back(at::zeros(shape));
        for (std::size_t m = 0; m < backwards.size(); ++m) {
          const bool boundary = m + 1 == backwards.size() || (boundary_twice && m + 2 == backwards.size());
          reducer.prepare_backward(boundary);
          at::Tensor loss = at::zeros({}, at::kFloat);
          for (std::size_t i : backwards[m]) {
            loss = loss + (params[i].to(at::kFloat) * c(i, static_cast<int>(m))).sum();
            want[i] += c(i, static_cast<int>(m));
          }
          loss.backward();
          reducer.finish_backward();
        }
        const auto as_they_are = reducer.gradients_as_they_are();
        EXPECT_EQ(!as_they_are.empty(), kept && world == 1);
        if (!as_they_are.empty()) {
          ASSERT_EQ(as_they_are.size(), 1u);
          for (std::size_t i = 0; i < params.size(); ++i) {
            const at::Tensor& g = as_they_are[0][i];
            EXPECT_TRUE(at::equal(g.to(at::kFloat), want[i])) << i;
            // A used parameter's gradient is autograd's; an unused one's a zero of its own (not the fp32 buffer).
            EXPECT_EQ(g.scalar_type(), at::kBFloat16) << i;
          }
        }
        at::NoGradGuard no_grad;
        at::Tensor full = at::zeros({groups[0]->plan.total_numel});
        for (std::size_t i = 0; i < params.size(); ++i) groups[0]->view_of(full, i).copy_(want[i]);  // every rank adds the same: the average is one
        EXPECT_TRUE(at::equal(reducer.gradients().at(0), full)) << "the flat buffer, asked for after all";
        reducer.zero_grad();
      };
      window({{0, 1, 2}}, false, true);                // 3 unused: zero
      window({{0, 3}, {0, 1}}, false, false);          // accumulation: through the buffer; nothing of the last window
      window({{1, 2}, {2, 3}}, true, false);           // two backwards at the boundary: the first's kept ones folded in
      window({{0, 1, 2, 3}}, false, true);
      reducer.allow_gradients_as_they_are(false);
      window({{0, 1, 2, 3}}, false, false);
    });
  }
}

// An Embedding(sparse=true) gives a sparse gradient: it reaches the buffers as its dense sum in every reduction,
// in a window's first micro-step (converted, not added), with accumulation, and when one rank keeps the window's
// 16-bit gradients as they are.
TEST(BucketReducer, SparseGradientsJoinTheBuffersDense) {
  for (const auto reduction :
       {Reduction::kAllReduce, Reduction::kReduceScatterOnBoundary, Reduction::kReduceScatterEachMicroStep}) {
    for (const int world : {1, 2}) {
      for (const bool as_they_are : {true, false}) {
        if (as_they_are && reduction != Reduction::kAllReduce) continue;
        testing::run_ranks(world, [&](const std::shared_ptr<comm::Communicator>& comm) {
          const bool shards = reduction != Reduction::kAllReduce;
          auto table = at::zeros({10, 4}, at::kBFloat16).requires_grad_(true);
          auto other = at::zeros({6}, at::kBFloat16).requires_grad_(true);
          auto groups = build_flat_groups({{table, other}}, FlatOptions{24, kAlignment, shards ? world : 1});
          ReducerOptions options;
          options.reduction = reduction;
          BucketReducer reducer({groups[0].get()}, comm, options, Placement::on_device(c10::Device(c10::kCPU)));
          reducer.allow_gradients_as_they_are(as_they_are);
          for (const int gas : {1, 2, 1}) {  // windows: the first micro-step converts, the second adds
            for (int m = 0; m < gas; ++m) {
              reducer.prepare_backward(/*boundary=*/m + 1 == gas);
              const at::Tensor ids = at::tensor({1, 3, 3, 7}, at::kLong);
              const at::Tensor rows = at::embedding(table, ids, -1, false, /*sparse=*/true);
              (rows.to(at::kFloat).sum() + (other.to(at::kFloat) * 2.0).sum()).backward();
              reducer.finish_backward();
            }
            at::NoGradGuard no_grad;
            at::Tensor want_table = at::zeros({10, 4});  // per micro-step: a row's count among the ids
            want_table[1].fill_(gas);
            want_table[3].fill_(2.0 * gas);
            want_table[7].fill_(gas);
            at::Tensor full = at::zeros({groups[0]->plan.total_numel});
            groups[0]->view_of(full, 0).copy_(want_table);
            groups[0]->view_of(full, 1).fill_(2.0 * gas);
            at::Tensor want = full;
            if (shards) {
              want = at::zeros({groups[0]->plan.shard_numel});
              groups[0]->copy_own_chunks(full, want, comm->rank());
            }
            EXPECT_TRUE(at::equal(reducer.gradients().at(0), want))
                << "reduction " << static_cast<int>(reduction) << ", world " << world << ", gas " << gas
                << (as_they_are ? ", as they are" : "");
            reducer.zero_grad();
          }
        });
      }
    }
  }
}

TEST(BucketReducer, OffloadedShardsAreRightEveryWindowAndKeepTheirHostMemory) {
  // ZeRO-1 and ZeRO-2 with every bucket offloaded: each window's shard lands on the host, equal to the closed
  // form, and the host blocks are reused from window to window (pinned allocation is slow; it must not churn).
  // One rank too: there a bucket's reduce-scatter result is its send buffer itself.
  for (int ws : {1, 2}) {
    for (Reduction reduction : {Reduction::kReduceScatterOnBoundary, Reduction::kReduceScatterEachMicroStep}) {
      testing::run_ranks(ws, [&](const std::shared_ptr<comm::Communicator>& comm) {
        auto params = make_params();
        auto groups = build_flat_groups({params}, FlatOptions{24, kAlignment, ws});
        ReducerOptions options;
        options.reduction = reduction;
        BucketReducer reducer({groups[0].get()}, comm, options,
                              Placement::offloaded(c10::Device(c10::kCPU), 1.0, /*pinned=*/true));
        at::Tensor full = at::zeros({groups[0]->plan.total_numel});
        for (std::size_t i = 0; i < params.size(); ++i) groups[0]->view_of(full, i).copy_(expected_gradient(i, ws, 2));
        at::Tensor expected = at::zeros({groups[0]->plan.shard_numel});
        groups[0]->copy_own_chunks(full, expected, comm->rank());
        at::Tensor first_block;  // held, so a re-allocated shard could not reuse its address
        for (int window = 0; window < 3; ++window) {
          backward_window(reducer, params, comm->rank(), 2);
          const ShardBuffer shard = reducer.shards().at(0);
          ASSERT_EQ(shard.pieces().size(), 1u);
          EXPECT_TRUE(shard.pieces()[0].host);
          EXPECT_TRUE(at::allclose(shard.to_cpu(), expected, 1e-6, 1e-6)) << "window " << window;
          if (window == 0) first_block = shard.pieces()[0].tensor;
          EXPECT_TRUE(shard.pieces()[0].tensor.is_alias_of(first_block)) << "window " << window;
          reducer.zero_grad();
          at::NoGradGuard no_grad;
          for (auto& p : params) p.mutable_grad().reset();  // a user's zero_grad(set_to_none)
        }
      });
    }
  }
}

TEST(LandingBudget, OpensFreelyUntilALandingIsPendingThenWaitsForIt) {
  LandingBudget budget(100);
  // Nothing pending: buckets that are only filling never make open() wait, whatever the cap (waiting for them
  // would hang the thread that fills them).
  budget.open(80);
  budget.open(80);
  EXPECT_EQ(budget.waits(), 0);
  EXPECT_EQ(budget.peak(), 160);
  budget.launched(80);
  budget.launched(80);
  budget.landed(80);
  budget.landed(80);
  // One landing of 60 pending. Buckets still filling are not held against the cap (they land only once their
  // thread goes on): 60 + 30 fits, and so does the next 60 + 30.
  budget.open(60);
  budget.launched(60);
  budget.open(30);
  budget.open(30);
  EXPECT_EQ(budget.waits(), 0);
  budget.launched(30);
  // 90 pending: one more of 30 would make 120, so open() waits for the landing of 60.
  std::atomic<bool> opened{false};
  std::thread backward([&] {
    budget.open(30);
    opened = true;
  });
  // Counted under the lock before it sleeps. Bounded, so that a budget which never waits fails instead of hanging.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (budget.waits() == 0 && !opened && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  EXPECT_FALSE(opened.load()) << "opened past the cap with a landing pending";
  budget.landed(60);
  backward.join();
  EXPECT_TRUE(opened.load());
  EXPECT_EQ(budget.waits(), 1);
  EXPECT_EQ(budget.peak(), 160);  // the 160 opened with nothing pending; 120 before the wait, 90 after it
}

TEST(BucketReducer, OffloadBackwardOpensNoMoreThanTheLandingLeadAhead) {
  // One bucket per parameter. The landing thread is held after the first landing, as a GPU far behind autograd
  // would hold it; backward must then wait before holding more than two buckets for the host, and go on as
  // soon as the landings resume (the gate opens on that wait, so nothing here depends on timing). ZeRO-2's send
  // buffers are its staging buffers; ZeRO-1's, the boundary's buckets cast to the communication dtype.
  struct Case {
    Reduction reduction;
    std::optional<at::ScalarType> communication_dtype;
    std::int64_t element_bytes;
  };
  for (const Case& c : {Case{Reduction::kReduceScatterEachMicroStep, std::nullopt, 4},
                        Case{Reduction::kReduceScatterOnBoundary, at::kBFloat16, 2}}) {
    SCOPED_TRACE(c.reduction == Reduction::kReduceScatterOnBoundary ? "stage 1, bf16 communication" : "stage 2");
    testing::run_ranks(1, [&](const std::shared_ptr<comm::Communicator>& comm) {
      std::vector<at::Tensor> params;
      for (int i = 0; i < 8; ++i) params.push_back(at::zeros({kAlignment}).requires_grad_(true));
      auto groups = build_flat_groups({params}, FlatOptions{kAlignment, kAlignment, 1});
      ASSERT_EQ(groups[0]->plan.buckets.size(), params.size());
      ReducerOptions options;
      options.reduction = c.reduction;
      options.communication_dtype = c.communication_dtype;
      options.landing_lead_bytes = 1;  // the floor: two buckets
      BucketReducer reducer({groups[0].get()}, comm, options,
                            Placement::offloaded(c10::Device(c10::kCPU), 1.0, /*pinned=*/false));
      const std::int64_t bucket_bytes = kAlignment * c.element_bytes;
      EXPECT_EQ(reducer.landing_cap_bytes(), 2 * bucket_bytes);
      std::atomic<bool> held{false};
      reducer.on_host_chunk_final([&](std::size_t, std::size_t) {
        if (held.exchange(true)) return;
        // Polled (nothing notifies this thread when backward starts waiting); bounded, so that a reducer which
        // never waits fails below instead of hanging here.
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (reducer.landing_waits() == 0 && std::chrono::steady_clock::now() < deadline) {
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
      });
      for (int window = 0; window < 2; ++window) {
        reducer.prepare_backward(/*boundary=*/true);
        at::Tensor loss = at::zeros({});
        for (std::size_t i = 0; i < params.size(); ++i) {
          loss = loss + (params[i] * (at::arange(kAlignment, at::kFloat) + 10.0 * static_cast<double>(i))).sum();
        }
        loss.backward();
        reducer.finish_backward();
        at::NoGradGuard no_grad;
        at::Tensor host = reducer.shards().at(0).to_cpu();
        for (std::size_t i = 0; i < params.size(); ++i) {  // small integers: exact in bf16
          EXPECT_TRUE(at::equal(groups[0]->view_of(host, i),
                                at::arange(kAlignment, at::kFloat) + 10.0 * static_cast<double>(i)))
              << "window " << window << ", parameter " << i;
        }
        reducer.zero_grad();
      }
      EXPECT_GE(reducer.landing_waits(), 1);
      EXPECT_LE(reducer.peak_landing_bytes(), reducer.landing_cap_bytes());
      EXPECT_GE(reducer.peak_landing_bytes(), 2 * bucket_bytes);
    });
  }
}

TEST(HostMemory, ExactSizeAlignedBlocks) {
  for (auto dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
    // Without a CUDA device "pinned" falls back to ordinary memory; the block is still aligned and sized.
    at::Tensor t = host_empty(1001, dtype, /*pinned=*/true);
    EXPECT_EQ(t.numel(), 1001);
    EXPECT_EQ(t.scalar_type(), dtype);
    EXPECT_TRUE(t.device().is_cpu());
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(t.data_ptr()) % 64, 0u);
    t.fill_(3);  // writable end to end (ASan checks the bounds)
    EXPECT_EQ(t.to(at::kDouble).sum().item<double>(), 3003.0);
  }
  EXPECT_EQ(host_empty(0, at::kFloat, false).numel(), 0);
}

}  // namespace
}  // namespace deepspeed::zero
