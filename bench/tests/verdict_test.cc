// The benchmarks' verdicts on the faults they exist to catch: each case plants one (a lost
// write, a run that could not measure, no run at all) into figures that otherwise meet the
// target, and the verdict must not be "met".
#include "bench/verdict.h"

#include <gtest/gtest.h>

#include <cmath>

namespace tandem::bench {
namespace {

TEST(JudgeMedianTest, MetAndMissedByTheMedian) {
  EXPECT_EQ(JudgeMedian({1.0, 3.0, 2.0}, 3, 2.0), Verdict::kMet);
  EXPECT_EQ(JudgeMedian({1.0, 3.0, 2.5}, 3, 2.0), Verdict::kMissed);
  // Strict: the memory target is "below".
  EXPECT_EQ(JudgeMedian({2.0}, 1, 2.0, /*strict=*/true), Verdict::kMissed);
  EXPECT_EQ(JudgeMedian({1.9}, 1, 2.0, /*strict=*/true), Verdict::kMet);
}

// A round whose ramp timed out gives NaN: one good round of three judges nothing.
TEST(JudgeMedianTest, ARunWithoutItsFigureIsNotMeasured) {
  EXPECT_EQ(JudgeMedian({1.0, NAN, NAN}, 3, 2.0), Verdict::kNotMeasured);
  EXPECT_EQ(JudgeMedian({1.0, 1.0, NAN}, 3, 2.0), Verdict::kNotMeasured);
}

// An interrupt: fewer runs than asked for, or none (--runs 0).
TEST(JudgeMedianTest, FewerRunsThanAskedForIsNotMeasured) {
  EXPECT_EQ(JudgeMedian({1.0, 1.0}, 3, 2.0), Verdict::kNotMeasured);
  EXPECT_EQ(JudgeMedian({}, 5, 2.0), Verdict::kNotMeasured);
  EXPECT_EQ(JudgeMedian({}, 0, 2.0), Verdict::kNotMeasured);
}

TEST(JudgeLossTest, ZeroTargetMetOnlyWithNothingMissing) {
  EXPECT_EQ(JudgeLoss({0.0, 0.0}, 2, 0.0, 0, 0), Verdict::kMet);
  // One write missing, acknowledged just before the failure: its age is below a second, the
  // median age is 0, and it is still a loss.
  EXPECT_EQ(JudgeLoss({0.0, 0.0, 0.2}, 3, 0.0, 1, 0), Verdict::kMissed);
}

// The split-brain loss: a write acknowledged after the failure and then missing. Its age at
// the failure is negative, so the RPO figure stays 0 — the verdict must not.
TEST(JudgeLossTest, AWriteLostAfterTheFailureIsMissedWhateverTheTarget) {
  EXPECT_EQ(JudgeLoss({0.0}, 1, 0.0, 1, 1), Verdict::kMissed);
  EXPECT_EQ(JudgeLoss({0.0}, 1, 15.0, 1, 1), Verdict::kMissed);
}

TEST(JudgeLossTest, NonZeroTargetJudgedByTheMedianAge) {
  EXPECT_EQ(JudgeLoss({0.5, 0.7, 20.0}, 3, 15.0, 9, 0), Verdict::kMet);
  EXPECT_EQ(JudgeLoss({16.0, 17.0, 0.1}, 3, 15.0, 9, 0), Verdict::kMissed);
  EXPECT_EQ(JudgeLoss({0.5, NAN}, 2, 15.0, 0, 0), Verdict::kNotMeasured);
  EXPECT_EQ(JudgeLoss({}, 1, 0.0, 0, 0), Verdict::kNotMeasured);
}

TEST(VerdictNameTest, AsPrinted) {
  EXPECT_EQ(VerdictName(Verdict::kMet), "met");
  EXPECT_EQ(VerdictName(Verdict::kMissed), "MISSED");
  EXPECT_EQ(VerdictName(Verdict::kNotMeasured), "NOT MEASURED");
}

}  // namespace
}  // namespace tandem::bench
