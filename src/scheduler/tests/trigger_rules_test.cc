#include "scheduler/trigger_rules.h"

#include <gtest/gtest.h>

namespace tandem::scheduler {
namespace {

// rule, upstream count, then success/failed/upstream_failed/skipped; done is their sum.
store::PendingTask T(std::string rule, int n, int ok, int failed = 0, int up_failed = 0,
                     int skipped = 0) {
  store::PendingTask t;
  t.ti_id = "x";
  t.trigger_rule = std::move(rule);
  t.operator_name = "BashOperator";
  t.upstream = n;
  t.success = ok;
  t.failed = failed;
  t.upstream_failed = up_failed;
  t.skipped = skipped;
  t.done = ok + failed + up_failed + skipped;
  return t;
}

const std::optional<std::string> kWait;

TEST(TriggerRulesTest, AllSuccess) {
  EXPECT_EQ(Evaluate(T("all_success", 2, 2)), "scheduled");
  EXPECT_EQ(Evaluate(T("all_success", 2, 1)), kWait);
  EXPECT_EQ(Evaluate(T("all_success", 2, 0, 1)), "upstream_failed");
  EXPECT_EQ(Evaluate(T("all_success", 2, 0, 0, 1)), "upstream_failed");
  EXPECT_EQ(Evaluate(T("all_success", 2, 1, 0, 0, 1)), "skipped");
  EXPECT_EQ(Evaluate(T("all_success", 0, 0)), "scheduled");  // a root task
}

TEST(TriggerRulesTest, AllFailed) {
  EXPECT_EQ(Evaluate(T("all_failed", 2, 0, 1, 1)), "scheduled");
  EXPECT_EQ(Evaluate(T("all_failed", 2, 0, 1)), kWait);
  EXPECT_EQ(Evaluate(T("all_failed", 2, 1)), "skipped");
  EXPECT_EQ(Evaluate(T("all_failed", 2, 0, 1, 0, 1)), "skipped");
}

TEST(TriggerRulesTest, AllDoneWaitsForEveryUpstreamWhateverTheOutcome) {
  EXPECT_EQ(Evaluate(T("all_done", 3, 1, 1)), kWait);
  EXPECT_EQ(Evaluate(T("all_done", 3, 1, 1, 0, 1)), "scheduled");
}

TEST(TriggerRulesTest, OneSuccessAndOneFailed) {
  EXPECT_EQ(Evaluate(T("one_success", 3, 1)), "scheduled");
  EXPECT_EQ(Evaluate(T("one_success", 3, 0, 1)), kWait);
  EXPECT_EQ(Evaluate(T("one_success", 2, 0, 1, 0, 1)), "upstream_failed");
  EXPECT_EQ(Evaluate(T("one_success", 2, 0, 0, 0, 2)), "skipped");
  EXPECT_EQ(Evaluate(T("one_failed", 3, 0, 1)), "scheduled");
  EXPECT_EQ(Evaluate(T("one_failed", 3, 2)), kWait);
  EXPECT_EQ(Evaluate(T("one_failed", 2, 2)), "skipped");
}

TEST(TriggerRulesTest, NoneFailedAndNoneSkipped) {
  EXPECT_EQ(Evaluate(T("none_failed", 2, 1, 0, 0, 1)), "scheduled");
  EXPECT_EQ(Evaluate(T("none_failed", 2, 1)), kWait);
  EXPECT_EQ(Evaluate(T("none_failed", 2, 0, 1)), "upstream_failed");
  EXPECT_EQ(Evaluate(T("none_skipped", 2, 1, 1)), "scheduled");
  EXPECT_EQ(Evaluate(T("none_skipped", 2, 1, 0, 0, 1)), "skipped");
  EXPECT_EQ(Evaluate(T("none_skipped", 2, 1)), kWait);
}

TEST(TriggerRulesTest, AlwaysRunsAtOnceAndEmptyOperatorsSucceedInPlace) {
  EXPECT_EQ(Evaluate(T("always", 2, 0)), "scheduled");
  store::PendingTask t = T("all_success", 1, 1);
  t.operator_name = "EmptyOperator";
  EXPECT_EQ(Evaluate(t), "success");
  t = T("all_success", 1, 0, 1);
  t.operator_name = "EmptyOperator";
  EXPECT_EQ(Evaluate(t), "upstream_failed");
}

}  // namespace
}  // namespace tandem::scheduler
