#include "base/status.h"

#include <gtest/gtest.h>

#include "base/clock.h"
#include "base/random.h"
#include "base/strong_id.h"

namespace tandem {
namespace {

Result<int> Half(int x) {
  if (x % 2 != 0) return InvalidArgument("odd: " + std::to_string(x));
  return x / 2;
}

Result<int> Quarter(int x) {
  ASSIGN_OR_RETURN(int h, Half(x));
  return Half(h);
}

TEST(StatusTest, PropagatesErrorsAndValues) {
  EXPECT_EQ(*Quarter(8), 2);
  Result<int> r = Quarter(6);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "odd: 3");
  EXPECT_EQ(r.status().WithContext("quarter").message(), "quarter: odd: 3");
}

TEST(StrongIdTest, ComparesByValue) {
  DeploymentId a("x"), b("x"), c("y");
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_LT(Epoch(1), Epoch(2));
}

TEST(RandomTest, UuidsAreVersion4AndDistinct) {
  std::string u = NewUuid();
  ASSERT_EQ(u.size(), 36u);
  EXPECT_EQ(u[14], '4');
  EXPECT_NE(u, NewUuid());
}

TEST(BackoffTest, DoublesUpToCeiling) {
  Backoff b(std::chrono::milliseconds(100), std::chrono::milliseconds(300));
  EXPECT_EQ(b.Next(), std::chrono::milliseconds(100));
  EXPECT_EQ(b.Next(), std::chrono::milliseconds(200));
  EXPECT_EQ(b.Next(), std::chrono::milliseconds(300));
  EXPECT_EQ(b.Next(), std::chrono::milliseconds(300));
}

TEST(FakeClockTest, MovesOnlyWhenTold) {
  FakeClock c;
  MonoTime t0 = c.Now();
  c.SleepFor(std::chrono::seconds(3));
  EXPECT_EQ(c.Now() - t0, std::chrono::seconds(3));
}

}  // namespace
}  // namespace tandem
