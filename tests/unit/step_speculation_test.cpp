// The bookkeeping of ZeRO-Offload's speculative host updates (src/zero/step_speculation.h): how much runs
// speculatively, what must be redone, and that a worker waiting for the verdict gets it (or is released when
// the step is abandoned). Expectations hold whatever the threads' timing.
#include <thread>

#include <gtest/gtest.h>

#include "src/zero/step_speculation.h"

namespace deepspeed::zero {
namespace {

TEST(StepSpeculation, BackupIsAQuarterOfTheHostElements) {
  EXPECT_EQ(speculation_backup_numel(0), 0);
  EXPECT_EQ(speculation_backup_numel(1), 1);
  EXPECT_EQ(speculation_backup_numel(400), 100);
  EXPECT_EQ(speculation_backup_numel(401), 101);
}

TEST(StepSpeculation, SpeculatesWhatTheBackupHoldsAndRedoesItWhenTheFactorIsNotOne) {
  StepSpeculation s(10);
  s.begin_step();
  const auto a = s.next(0, 3, 0, 4);
  ASSERT_NE(a.backup, nullptr);
  EXPECT_EQ(a.numel, 4);
  const auto b = s.next(1, 0, 0, 8);  // only 6 left
  EXPECT_EQ(b.numel, 6);
  EXPECT_EQ(b.backup, a.backup + 3 * 4);  // 3 floats (master, exp_avg, exp_avg_sq) per element
  EXPECT_TRUE(s.decide(1.0f).empty());  // factor 1: the speculative updates are the step's
  const auto rest = s.next(1, 0, 6, 2);
  EXPECT_EQ(rest.backup, nullptr);
  EXPECT_EQ(rest.numel, 2);
  EXPECT_EQ(rest.scale, 1.0f);

  s.begin_step();  // the backup is free again
  const auto c = s.next(2, 5, 0, 10);
  EXPECT_EQ(c.numel, 10);
  EXPECT_EQ(c.backup, a.backup);
  const auto redo = s.decide(0.5f);
  ASSERT_EQ(redo.size(), 1u);
  EXPECT_EQ(redo[0].group, 2u);
  EXPECT_EQ(redo[0].bucket, 5u);
  EXPECT_EQ(redo[0].begin, 0);
  EXPECT_EQ(redo[0].numel, 10);
  EXPECT_EQ(redo[0].backup, c.backup);
  const auto after = s.next(0, 0, 0, 7);  // decided: no speculation, the step's factor
  EXPECT_EQ(after.backup, nullptr);
  EXPECT_EQ(after.scale, 0.5f);
  EXPECT_EQ(s.speculated_steps(), 2);
  EXPECT_EQ(s.rolled_back_steps(), 1);

  s.begin_step();  // a step that speculated nothing counts as neither
  EXPECT_TRUE(s.decide(0.25f).empty());
  EXPECT_EQ(s.speculated_steps(), 2);
  EXPECT_EQ(s.rolled_back_steps(), 1);
}

TEST(StepSpeculation, AStepAfterOneThatClippedWaitsForTheVerdict) {
  StepSpeculation s(10);
  EXPECT_TRUE(s.begin_step());
  EXPECT_NE(s.next(0, 0, 0, 4).backup, nullptr);  // optimistic before any verdict
  EXPECT_EQ(s.decide(0.5f).size(), 1u);
  EXPECT_FALSE(s.begin_step());  // the last step clipped: no speculation, though the backup is free
  StepSpeculation::Ticket waited;
  std::thread worker([&] { waited = s.next(0, 0, 0, 4); });
  EXPECT_TRUE(s.decide(1.0f).empty());
  worker.join();
  EXPECT_EQ(waited.backup, nullptr);
  EXPECT_EQ(waited.numel, 4);
  EXPECT_EQ(waited.scale, 1.0f);
  EXPECT_TRUE(s.begin_step());  // factor 1 last time: speculating again
  EXPECT_NE(s.next(0, 0, 0, 4).backup, nullptr);
  EXPECT_EQ(s.speculated_steps(), 2);
}

TEST(StepSpeculation, RangesAreSlicedSoTheVerdictStopsTheBackupSoon) {
  StepSpeculation s(2 * kSpeculationSlice);
  s.begin_step();
  const auto a = s.next(0, 0, 0, 3 * kSpeculationSlice);
  EXPECT_EQ(a.numel, kSpeculationSlice);
  const auto b = s.next(0, 0, kSpeculationSlice, 2 * kSpeculationSlice);
  EXPECT_EQ(b.numel, kSpeculationSlice);
  EXPECT_EQ(s.decide(0.5f).size(), 2u);
}

TEST(StepSpeculation, AWorkerOutOfBackupGetsTheVerdict) {
  StepSpeculation s(2);
  s.begin_step();
  EXPECT_EQ(s.next(0, 0, 0, 2).numel, 2);
  StepSpeculation::Ticket waited;
  std::thread worker([&] { waited = s.next(0, 1, 0, 5); });  // blocks (or not yet started) until decide()
  const auto redo = s.decide(0.75f);
  worker.join();
  EXPECT_EQ(redo.size(), 1u);
  EXPECT_EQ(waited.backup, nullptr);
  EXPECT_EQ(waited.numel, 5);
  EXPECT_EQ(waited.scale, 0.75f);
  EXPECT_FALSE(waited.skip);
}

TEST(StepSpeculation, AbandoningReleasesAWaitingWorker) {
  StepSpeculation s(1);
  s.begin_step();
  EXPECT_EQ(s.next(0, 0, 0, 3).numel, 1);
  StepSpeculation::Ticket waited;
  std::thread worker([&] { waited = s.next(0, 0, 1, 2); });
  s.abandon();
  worker.join();
  EXPECT_TRUE(waited.skip);
  EXPECT_EQ(waited.numel, 0);
}

}  // namespace
}  // namespace deepspeed::zero
