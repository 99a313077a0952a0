#include "dr/lease.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

namespace tandem::dr {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// A voter on a fake clock whose durable store is a vector of persisted values.
class VoterTest : public ::testing::Test {
 protected:
  Voter MakeVoter(int64_t promised, Duration restart_unknown = Duration::zero()) {
    return Voter(&clock_, "c", promised,
                 [this](int64_t v) -> Status {
                   if (!persist_error_.ok()) return persist_error_;
                   persisted_.push_back(v);
                   return Status::Ok();
                 },
                 restart_unknown);
  }

  GrantAnswer MustGrant(Voter& v, const std::string& holder, int64_t epoch, Duration d) {
    auto a = v.Grant({holder, epoch, d});
    EXPECT_TRUE(a.ok()) << a.status().ToString();
    return a.ok() ? *a : GrantAnswer{};
  }

  FakeClock clock_;
  std::vector<int64_t> persisted_;
  Status persist_error_;
};

TEST_F(VoterTest, GrantsAndRenewsToTheSameHolder) {
  Voter v = MakeVoter(3);
  GrantAnswer a = MustGrant(v, "a", 3, seconds(2));
  EXPECT_TRUE(a.granted) << a.detail;
  EXPECT_EQ(a.promised, 3);
  EXPECT_TRUE(persisted_.empty());  // not higher than promised: nothing to store
  EXPECT_EQ(v.OutstandingExcept("b"), seconds(2));

  clock_.Advance(seconds(1));
  EXPECT_TRUE(MustGrant(v, "a", 3, seconds(2)).granted);
  EXPECT_EQ(v.OutstandingExcept("b"), seconds(2));  // renewal: counted from now
  EXPECT_EQ(v.OutstandingExcept("a"), Duration::zero());
}

TEST_F(VoterTest, RaisesPromisedThroughPersistOnAHigherEpoch) {
  Voter v = MakeVoter(3);
  GrantAnswer a = MustGrant(v, "a", 5, seconds(2));
  EXPECT_TRUE(a.granted);
  EXPECT_EQ(a.promised, 5);
  EXPECT_EQ(v.promised(), 5);
  EXPECT_EQ(persisted_, std::vector<int64_t>{5});
}

TEST_F(VoterTest, CapsTheDurationAtSixtySeconds) {
  Voter v = MakeVoter(1);
  EXPECT_TRUE(MustGrant(v, "a", 1, seconds(600)).granted);
  // The protocol's bound (docs/disaster-recovery.md), not the code's constant.
  EXPECT_EQ(v.OutstandingExcept("b"), seconds(60));
}

TEST_F(VoterTest, RefusesAnotherHolderUntilTheGrantExpires) {
  Voter v = MakeVoter(1);
  ASSERT_TRUE(MustGrant(v, "a", 1, seconds(2)).granted);

  clock_.Advance(milliseconds(1500));
  GrantAnswer b = MustGrant(v, "b", 2, seconds(2));
  EXPECT_FALSE(b.granted);
  EXPECT_NE(b.detail.find("a holds a lease"), std::string::npos) << b.detail;
  EXPECT_NE(b.detail.find("epoch 1"), std::string::npos) << b.detail;
  EXPECT_EQ(v.promised(), 1);  // a refused request promises nothing

  clock_.Advance(milliseconds(500));  // a's grant expires exactly now
  b = MustGrant(v, "b", 2, seconds(2));
  EXPECT_TRUE(b.granted) << b.detail;
  EXPECT_EQ(v.promised(), 2);
  // a cannot come back below the promised epoch, nor at it while b holds the grant.
  EXPECT_FALSE(MustGrant(v, "a", 1, seconds(2)).granted);
  EXPECT_FALSE(MustGrant(v, "a", 2, seconds(2)).granted);
}

TEST_F(VoterTest, RefusesBelowPromised) {
  Voter v = MakeVoter(7);
  GrantAnswer a = MustGrant(v, "a", 6, seconds(2));
  EXPECT_FALSE(a.granted);
  EXPECT_EQ(a.promised, 7);
  EXPECT_NE(a.detail.find("epoch 6"), std::string::npos) << a.detail;
  EXPECT_NE(a.detail.find("epoch 7"), std::string::npos) << a.detail;
  EXPECT_EQ(v.OutstandingExcept("b"), Duration::zero());
}

TEST_F(VoterTest, RejectsMalformedRequests) {
  Voter v = MakeVoter(1);
  EXPECT_EQ(v.Grant({"", 1, seconds(1)}).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(v.Grant({"a", 1, Duration::zero()}).status().code(), Code::kInvalidArgument);
}

TEST_F(VoterTest, PromiseReturnsTheOutstandingTimeAndStopsRenewals) {
  Voter v = MakeVoter(4);
  ASSERT_TRUE(MustGrant(v, "a", 4, seconds(2)).granted);
  clock_.Advance(milliseconds(500));

  auto out = v.Promise(5);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(*out, milliseconds(1500));  // a's grant stays recorded
  EXPECT_EQ(v.promised(), 5);
  EXPECT_EQ(persisted_, std::vector<int64_t>{5});
  EXPECT_FALSE(MustGrant(v, "a", 4, seconds(2)).granted);  // no renewal below 5
  EXPECT_EQ(v.OutstandingExcept("b"), milliseconds(1500));

  // A lower or equal promise changes nothing and still answers the time.
  out = v.Promise(3);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, milliseconds(1500));
  EXPECT_EQ(v.promised(), 5);
  EXPECT_EQ(persisted_.size(), 1u);

  clock_.Advance(seconds(2));
  out = v.Promise(5);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, Duration::zero());
  EXPECT_TRUE(MustGrant(v, "b", 5, seconds(2)).granted);
}

TEST_F(VoterTest, OutstandingExceptLeavesOutOneHolder) {
  Voter v = MakeVoter(1);
  ASSERT_TRUE(MustGrant(v, "b", 1, seconds(1)).granted);
  clock_.Advance(seconds(1));
  ASSERT_TRUE(MustGrant(v, "a", 1, seconds(3)).granted);
  EXPECT_EQ(v.OutstandingExcept("b"), seconds(3));
  EXPECT_EQ(v.OutstandingExcept("a"), Duration::zero());
}

TEST_F(VoterTest, ReleaseEndsTheGrantOnlyForTheSameHolderAndEpoch) {
  Voter v = MakeVoter(2);
  ASSERT_TRUE(MustGrant(v, "a", 2, seconds(2)).granted);
  v.Release("a", 1);  // another epoch: ignored
  v.Release("b", 2);  // another holder: ignored
  EXPECT_EQ(v.OutstandingExcept("b"), seconds(2));
  EXPECT_FALSE(MustGrant(v, "b", 2, seconds(2)).granted);

  v.Release("a", 2);
  EXPECT_EQ(v.OutstandingExcept("b"), Duration::zero());
  auto out = v.Promise(3);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, Duration::zero());
  EXPECT_TRUE(MustGrant(v, "b", 3, seconds(2)).granted);
}

TEST_F(VoterTest, PersistFailureChangesNothing) {
  Voter v = MakeVoter(2);
  ASSERT_TRUE(MustGrant(v, "a", 2, seconds(2)).granted);
  persist_error_ = Unavailable("disk gone");

  auto g = v.Grant({"a", 3, seconds(5)});
  EXPECT_EQ(g.status().code(), Code::kUnavailable);
  EXPECT_NE(g.status().message().find("disk gone"), std::string::npos);
  auto p = v.Promise(4);
  EXPECT_EQ(p.status().code(), Code::kUnavailable);
  EXPECT_EQ(v.promised(), 2);
  EXPECT_EQ(v.OutstandingExcept("b"), seconds(2));  // the old grant, not the refused one
  EXPECT_TRUE(persisted_.empty());

  // Requests that need no persisting still work.
  EXPECT_TRUE(MustGrant(v, "a", 2, seconds(1)).granted);
}

TEST_F(VoterTest, RestartWindowCountsAsAnUnknownGrant) {
  Voter v = MakeVoter(5, seconds(2));
  EXPECT_EQ(v.OutstandingExcept("a"), seconds(2));
  EXPECT_EQ(v.OutstandingExcept("b"), seconds(2));

  GrantAnswer a = MustGrant(v, "a", 5, seconds(2));
  EXPECT_FALSE(a.granted);
  EXPECT_NE(a.detail.find("restarted"), std::string::npos) << a.detail;

  clock_.Advance(milliseconds(500));
  auto out = v.Promise(6);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, milliseconds(1500));
  EXPECT_EQ(v.promised(), 6);

  clock_.Advance(milliseconds(1500));
  EXPECT_EQ(v.OutstandingExcept("a"), Duration::zero());
  EXPECT_TRUE(MustGrant(v, "b", 6, seconds(2)).granted);
}

TEST_F(VoterTest, SilentForCountsFromTheLastRequestGrantedOrNot) {
  Voter v = MakeVoter(5);
  EXPECT_FALSE(v.SilentFor("a").has_value());
  EXPECT_FALSE(MustGrant(v, "a", 1, seconds(2)).granted);  // refused, still a request
  clock_.Advance(seconds(3));
  ASSERT_TRUE(v.SilentFor("a").has_value());
  EXPECT_EQ(*v.SilentFor("a"), seconds(3));
  ASSERT_TRUE(MustGrant(v, "a", 5, seconds(2)).granted);
  EXPECT_EQ(*v.SilentFor("a"), Duration::zero());
  EXPECT_FALSE(v.SilentFor("b").has_value());
}

class HolderLeaseTest : public ::testing::Test {
 protected:
  FakeClock clock_;
  HolderLease lease_{&clock_, seconds(2), milliseconds(300)};
};

TEST_F(HolderLeaseTest, HoldsFromWhenAskedMinusTheMargin) {
  EXPECT_FALSE(lease_.Valid(1));
  EXPECT_EQ(lease_.Remaining(), Duration::zero());

  const MonoTime asked = clock_.Now();
  clock_.Advance(milliseconds(200));  // the round took 0.2 s
  lease_.RoundDone(asked, 1, 2);
  EXPECT_TRUE(lease_.Valid(1));
  EXPECT_EQ(lease_.Remaining(), milliseconds(1500));  // 2 s - 0.3 s margin - 0.2 s in flight

  clock_.Advance(milliseconds(1499));
  EXPECT_TRUE(lease_.Valid(1));
  clock_.Advance(milliseconds(1));
  EXPECT_FALSE(lease_.Valid(1));
  EXPECT_EQ(lease_.Remaining(), Duration::zero());
}

TEST_F(HolderLeaseTest, OneGrantIsNotAMajority) {
  lease_.RoundDone(clock_.Now(), 1, 1);
  EXPECT_FALSE(lease_.Valid(1));

  lease_.RoundDone(clock_.Now(), 1, 3);
  EXPECT_TRUE(lease_.Valid(1));
  clock_.Advance(seconds(1));
  // A lost round leaves the previous validity to run out on its own.
  lease_.RoundDone(clock_.Now(), 1, 1);
  EXPECT_EQ(lease_.Remaining(), milliseconds(700));
  clock_.Advance(milliseconds(700));
  EXPECT_FALSE(lease_.Valid(1));
}

TEST_F(HolderLeaseTest, ValidOnlyForItsEpoch) {
  lease_.RoundDone(clock_.Now(), 4, 2);
  EXPECT_TRUE(lease_.Valid(4));
  EXPECT_FALSE(lease_.Valid(3));
  EXPECT_FALSE(lease_.Valid(5));

  // A higher epoch replaces it; a stale round for the lower one is ignored.
  clock_.Advance(milliseconds(100));
  lease_.RoundDone(clock_.Now(), 5, 2);
  EXPECT_TRUE(lease_.Valid(5));
  EXPECT_FALSE(lease_.Valid(4));
  lease_.RoundDone(clock_.Now(), 4, 2);
  EXPECT_TRUE(lease_.Valid(5));
}

TEST_F(HolderLeaseTest, AnOlderRoundFinishingLateDoesNotShortenTheLease) {
  const MonoTime first = clock_.Now();
  clock_.Advance(milliseconds(500));
  lease_.RoundDone(clock_.Now(), 1, 2);
  lease_.RoundDone(first, 1, 2);
  EXPECT_EQ(lease_.Remaining(), milliseconds(1700));
}

TEST_F(HolderLeaseTest, DropStopsAtOnceAndARoundInFlightCannotUndoIt) {
  const MonoTime asked = clock_.Now();
  lease_.RoundDone(asked, 2, 2);
  clock_.Advance(milliseconds(100));
  lease_.Drop();
  EXPECT_FALSE(lease_.Valid(2));
  EXPECT_EQ(lease_.Remaining(), Duration::zero());

  lease_.RoundDone(asked, 2, 3);  // asked before the drop
  EXPECT_FALSE(lease_.Valid(2));

  clock_.Advance(milliseconds(100));
  lease_.RoundDone(clock_.Now(), 2, 2);  // a new round after it
  EXPECT_TRUE(lease_.Valid(2));
}

TEST(HolderLeaseCapTest, NeverLongerThanAVoterGrants) {
  FakeClock clock;
  HolderLease lease(&clock, seconds(600), seconds(1));
  lease.RoundDone(clock.Now(), 1, 2);
  EXPECT_EQ(lease.Remaining(), seconds(60) - seconds(1));
}

}  // namespace
}  // namespace tandem::dr
