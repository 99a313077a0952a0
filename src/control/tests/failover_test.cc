#include "control/failover.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "base/fs.h"

namespace tandem::control {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// Thrown from a test hook to stop the control plane mid-operation, as a crash would: nothing
// after the throw point runs, and the test then starts a new control plane on the same file.
struct Crash {};

// A region agent as far as the failover cares: a role, an epoch and WAL positions, with every
// call recorded in a log shared by both regions (so the order across regions shows).
class FakeLink final : public RegionLink {
 public:
  FakeLink(std::string name, FakeClock* clock, std::vector<std::string>* calls)
      : name_(std::move(name)), clock_(clock), calls_(calls) {
    view.name = name_;
  }

  const std::string& name() const override { return name_; }

  Result<RegionView> State() override {
    ++state_calls;
    if (!reachable) return Unavailable(name_ + " does not answer");
    // A replica catches up by replay_step per look, up to replay_target.
    if (view.replay_lsn < replay_target) {
      view.replay_lsn = std::min(replay_target, view.replay_lsn + replay_step);
    }
    return view;
  }

  Result<PromiseResult> Promise(int64_t epoch) override {
    RETURN_IF_ERROR(Call("Promise " + std::to_string(epoch)));
    view.promised = std::max(view.promised, epoch);
    if (view.role == "active" && epoch > view.epoch) view.role = "fenced";
    return PromiseResult{view.promised, outstanding};
  }

  Result<StepDownResult> StepDown(int64_t epoch, Duration drain) override {
    RETURN_IF_ERROR(Call("StepDown " + std::to_string(epoch)));
    if (epoch != view.epoch) return FailedPrecondition("wrong epoch");
    clock_->Advance(std::min(drain, drain_takes));
    view.role = "stepped_down";
    return StepDownResult{view.current_lsn, 0};
  }

  Status Resume(int64_t epoch) override {
    RETURN_IF_ERROR(Call("Resume " + std::to_string(epoch)));
    view.role = "active";
    view.epoch = epoch;
    return Status::Ok();
  }

  Result<PromoteResult> Promote(int64_t epoch, bool /*forced*/) override {
    RETURN_IF_ERROR(Call("Promote " + std::to_string(epoch)));
    view.role = "active";
    view.epoch = epoch;
    view.in_recovery = false;
    view.streaming = false;
    view.current_lsn = view.replay_lsn;
    promoted_at = clock_->Now();
    if (after_promote) after_promote();
    return PromoteResult{3};
  }

  Status Rejoin(int64_t epoch, const std::string& primary) override {
    RETURN_IF_ERROR(Call("Rejoin " + std::to_string(epoch) + " " + primary));
    view.role = "rejoining";
    view.epoch = epoch;
    return Status::Ok();
  }

  // The test's handles.
  RegionView view;
  bool reachable = true;
  std::set<std::string> failing;  // calls ("Promise", "StepDown", ...) that answer an error
  uint64_t replay_step = 0;
  uint64_t replay_target = 0;
  Duration outstanding{};  // what Promise answers
  Duration drain_takes{};  // how long StepDown takes
  std::optional<MonoTime> promoted_at;
  std::function<void()> after_promote;
  int state_calls = 0;

 private:
  Status Call(const std::string& call) {
    if (!reachable) return Unavailable(name_ + " does not answer");
    calls_->push_back(name_ + "." + call);
    if (failing.count(call.substr(0, call.find(' ')))) {
      return Unavailable(name_ + " failed " + call);
    }
    return Status::Ok();
  }

  const std::string name_;
  FakeClock* const clock_;
  std::vector<std::string>* const calls_;
};

class FailoverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    clock_.SetWall(WallTime(seconds(1700000000)));
    auto dir = TempDir::Create("tandem-failover");
    ASSERT_TRUE(dir.ok()) << dir.status().ToString();
    dir_.emplace(std::move(dir).value());
    OpenControlPlane(Duration::zero());
    PairRow p;
    p.active = "a";
    p.standby = "b";
    p.original_primary = "a";
    ASSERT_TRUE(store_->InitPair(p).ok());

    a_.view.role = "active";
    a_.view.epoch = 1;
    a_.view.promised = 1;
    a_.view.current_lsn = 1000;
    b_.view.role = "standby";
    b_.view.epoch = 1;
    b_.view.promised = 1;
    b_.view.in_recovery = true;
    b_.view.streaming = true;
    b_.view.replay_lsn = 900;
    b_.view.replay_age_s = 0.5;
    b_.replay_target = 1000;
    b_.replay_step = 50;
    a_.drain_takes = seconds(1);
  }

  // Starts a control plane on the store file: store, voter (with the given restart window) and
  // failover. A second call is a restart.
  void OpenControlPlane(Duration restart_unknown) {
    failover_.reset();
    voter_.reset();
    store_.reset();
    auto store = ControlStore::Open(dir_->path() + "/control.db");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
    auto pair = store_->Pair();
    const int64_t promised = pair.ok() ? pair->promised : 1;
    voter_ = std::make_unique<dr::Voter>(
        &clock_, "control", promised, [this](int64_t v) { return store_->SetPromised(v); },
        restart_unknown);
    FailoverOptions opts;
    opts.planned_timeout = seconds(5);
    opts.promote_timeout = seconds(1);
    failover_ = std::make_unique<Failover>(
        store_.get(), voter_.get(), &clock_, opts,
        [this](const std::string& name) -> RegionLink* {
          if (name == "a") return &a_;
          if (name == "b") return &b_;
          return nullptr;
        },
        [this](const std::string& name) -> std::optional<RegionView> {
          auto it = last_views_.find(name);
          if (it == last_views_.end()) return std::nullopt;
          return it->second;
        },
        [this](const OperationRow& op, const std::string& message) {
          // The caller's part: an event per step.
          EventRow e;
          e.at_ms = 0;
          e.kind = op.state == "running" ? "failover.step" : "failover." + op.state;
          e.region = op.to;
          e.epoch = op.epoch_to;
          e.operation = op.id;
          e.message = message;
          EXPECT_TRUE(store_->AddEvent(e).ok());
          steps_.push_back(op.state == "running" ? op.step : op.state);
          if (crash_at_ == op.step && op.state == "running") throw Crash{};
        },
        publish_ ? std::function<Status(const std::string&)>(
                       [this](const std::string& region) { return publish_(region); })
                 : nullptr);
  }

  OperationRow MustBegin(const std::string& kind, const std::string& mode,
                         bool fall_through = false, bool declare_dead = false) {
    auto op = failover_->Begin(kind, mode, fall_through, declare_dead, "user alice");
    EXPECT_TRUE(op.ok()) << op.status().ToString();
    return op.ok() ? *op : OperationRow{};
  }

  FailoverOutcome MustRun(const OperationRow& op) {
    auto out = failover_->Run(op);
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    return out.ok() ? *out : FailoverOutcome{};
  }

  PairRow StoredPair() {
    auto p = store_->Pair();
    EXPECT_TRUE(p.ok()) << p.status().ToString();
    return p.ok() ? *p : PairRow{};
  }

  OperationRow StoredOp(int64_t id) {
    auto op = store_->Operation(id);
    EXPECT_TRUE(op.ok()) << op.status().ToString();
    return op.ok() ? *op : OperationRow{};
  }

  int Actives() const { return (a_.view.role == "active") + (b_.view.role == "active"); }

  static bool Has(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
  }

  FakeClock clock_;
  std::optional<TempDir> dir_;
  std::vector<std::string> calls_;
  FakeLink a_{"a", &clock_, &calls_};
  FakeLink b_{"b", &clock_, &calls_};
  std::map<std::string, RegionView> last_views_;
  std::vector<std::string> steps_;
  std::string crash_at_;
  // The publishing_dns step's callback; when set before OpenControlPlane, the step runs.
  std::function<Status(const std::string&)> publish_;
  ControlStorePtr store_;
  std::unique_ptr<dr::Voter> voter_;
  std::unique_ptr<Failover> failover_;
};

TEST_F(FailoverTest, PlannedSucceeds) {
  // a holds a lease from the control plane that its step-down does not end here: the promotion
  // must wait it out.
  ASSERT_TRUE(voter_->Grant({"a", 1, seconds(2)})->granted);
  const MonoTime start = clock_.Now();
  OperationRow op = MustBegin("failover", "planned");
  EXPECT_EQ(op.from, "a");
  EXPECT_EQ(op.to, "b");
  EXPECT_EQ(op.epoch_from, 1);
  EXPECT_EQ(op.epoch_to, 2);
  EXPECT_EQ(op.started_ms, 1700000000000);

  FailoverOutcome out = MustRun(op);
  EXPECT_EQ(out.state, "succeeded") << out.detail;
  EXPECT_EQ(out.epoch, 2);
  EXPECT_EQ(out.active, "b");
  EXPECT_EQ(out.loss_bytes, 0);
  EXPECT_EQ(out.loss_seconds, 0);
  EXPECT_GE(out.rto_seconds, 2.0);  // the drain (1 s) and the rest of the lease

  EXPECT_EQ(calls_, (std::vector<std::string>{"a.StepDown 1", "b.Promise 2", "b.Promote 2",
                                              "a.Rejoin 2 b"}));
  EXPECT_EQ(steps_,
            (std::vector<std::string>{"stepping_down", "catching_up", "raising_epoch",
                                      "waiting_leases", "promoting", "rejoining", "succeeded"}));
  ASSERT_TRUE(b_.promoted_at);
  EXPECT_GE(*b_.promoted_at, start + seconds(2));  // the lease a held had run out

  PairRow p = StoredPair();
  EXPECT_EQ(p.epoch, 2);
  EXPECT_EQ(p.active, "b");
  EXPECT_EQ(p.standby, "a");
  EXPECT_EQ(p.original_primary, "a");
  EXPECT_EQ(p.promised, 2);
  EXPECT_EQ(voter_->promised(), 2);
  EXPECT_EQ(a_.view.role, "rejoining");
  EXPECT_EQ(Actives(), 1);

  OperationRow stored = StoredOp(op.id);
  EXPECT_EQ(stored.state, "succeeded");
  EXPECT_EQ(stored.step, "rejoining");
  EXPECT_GT(stored.finished_ms, stored.started_ms);
  EXPECT_TRUE(Has(stored.detail, "b is active at epoch 2")) << stored.detail;
  EXPECT_FALSE(store_->RunningOperation()->has_value());

  auto events = store_->Events(100, 0);
  ASSERT_TRUE(events.ok());
  EXPECT_EQ(events->size(), 7u);
  EXPECT_EQ(events->front().kind, "failover.succeeded");
  EXPECT_EQ(events->back().kind, "failover.step");
  EXPECT_EQ(events->back().operation, op.id);
}

TEST_F(FailoverTest, TheHostNamesMoveAfterThePromotionAndBeforeTheOperationSucceeds) {
  std::vector<std::string> published;
  publish_ = [&](const std::string& region) {
    published.push_back(region + " after " + calls_.back());
    return Status::Ok();
  };
  OpenControlPlane(Duration::zero());
  FailoverOutcome out = MustRun(MustBegin("failover", "planned"));
  EXPECT_EQ(out.state, "succeeded") << out.detail;
  EXPECT_EQ(published, std::vector<std::string>{"b after b.Promote 2"});
  EXPECT_EQ(steps_, (std::vector<std::string>{"stepping_down", "catching_up", "raising_epoch",
                                              "waiting_leases", "promoting", "publishing_dns",
                                              "rejoining", "succeeded"}));
  EXPECT_FALSE(Has(out.detail, "host names")) << out.detail;
}

TEST_F(FailoverTest, AFailingDnsUpdateIsRetriedThenReportedWithoutHoldingTheFailoverBack) {
  int tries = 0;
  publish_ = [&](const std::string&) {
    ++tries;
    return FailedPrecondition("the TSIG key tandem-update is not the one it has");
  };
  OpenControlPlane(Duration::zero());
  const MonoTime start = clock_.Now();
  OperationRow op = MustBegin("failover", "forced");
  FailoverOutcome out = MustRun(op);
  EXPECT_EQ(out.state, "succeeded") << out.detail;
  EXPECT_EQ(out.active, "b");
  EXPECT_GT(tries, 3);
  EXPECT_GE(clock_.Now() - start, seconds(10));  // dns_timeout
  EXPECT_TRUE(Has(out.detail, "the host names still point at a")) << out.detail;
  EXPECT_TRUE(Has(out.detail, "TSIG key tandem-update")) << out.detail;
  EXPECT_EQ(calls_.back(), "a.Rejoin 2 b");  // the rest of the operation went on
  EXPECT_EQ(Actives(), 1);
}

TEST_F(FailoverTest, PlannedRollsBackWhenCatchUpTimesOut) {
  b_.replay_step = 0;  // b never gets past LSN 900
  OperationRow op = MustBegin("failover", "planned");
  const MonoTime start = clock_.Now();
  FailoverOutcome out = MustRun(op);
  EXPECT_EQ(out.state, "rolled_back");
  EXPECT_TRUE(Has(out.detail, "replayed up to LSN 900 of 1000")) << out.detail;
  EXPECT_EQ(out.epoch, 1);
  EXPECT_EQ(out.active, "a");
  EXPECT_GE(clock_.Now() - start, seconds(5));
  EXPECT_LT(clock_.Now() - start, seconds(6));

  EXPECT_EQ(calls_, (std::vector<std::string>{"a.StepDown 1", "a.Resume 1"}));
  EXPECT_EQ(steps_.back(), "rolled_back");
  EXPECT_EQ(voter_->promised(), 1);
  EXPECT_EQ(StoredPair().epoch, 1);
  EXPECT_EQ(a_.view.role, "active");
  EXPECT_EQ(b_.view.role, "standby");
  EXPECT_EQ(StoredOp(op.id).state, "rolled_back");
}

TEST_F(FailoverTest, PlannedRollsBackAtTheRaisedEpochWhenTheTargetCannotPromise) {
  b_.failing.insert("Promise");
  FailoverOutcome out = MustRun(MustBegin("failover", "planned"));
  EXPECT_EQ(out.state, "rolled_back");
  EXPECT_TRUE(Has(out.detail, "b did not promise epoch 2")) << out.detail;
  // The control plane promised 2 already, so a resumes there and the pair moves with it.
  EXPECT_EQ(calls_, (std::vector<std::string>{"a.StepDown 1", "b.Promise 2", "a.Resume 2"}));
  EXPECT_EQ(out.epoch, 2);
  EXPECT_EQ(out.active, "a");
  PairRow p = StoredPair();
  EXPECT_EQ(p.epoch, 2);
  EXPECT_EQ(p.active, "a");
  EXPECT_EQ(a_.view.epoch, 2);
  EXPECT_EQ(Actives(), 1);
}

TEST_F(FailoverTest, PlannedRollbackThatCannotResumeFails) {
  b_.replay_step = 0;
  a_.failing.insert("Resume");
  FailoverOutcome out = MustRun(MustBegin("failover", "planned"));
  EXPECT_EQ(out.state, "failed");
  EXPECT_TRUE(Has(out.detail, "no region is active")) << out.detail;
  EXPECT_EQ(out.active, "a");
  EXPECT_EQ(b_.view.role, "standby");
}

TEST_F(FailoverTest, PlannedFallsThroughToForced) {
  b_.replay_step = 0;
  OperationRow op = MustBegin("failover", "planned", /*fall_through=*/true);
  FailoverOutcome out = MustRun(op);
  EXPECT_EQ(out.state, "succeeded") << out.detail;
  EXPECT_TRUE(Has(out.detail, "falling through")) << out.detail;
  EXPECT_EQ(out.epoch, 2);
  EXPECT_EQ(out.active, "b");
  // Loss measured against the position a stepped down at.
  EXPECT_EQ(out.loss_bytes, 100);
  EXPECT_DOUBLE_EQ(out.loss_seconds, 0.5);
  EXPECT_EQ(calls_, (std::vector<std::string>{"a.StepDown 1", "b.Promise 2", "a.Promise 2",
                                              "b.Promote 2", "a.Rejoin 2 b"}));
  EXPECT_EQ(StoredOp(op.id).mode, "forced");
  EXPECT_EQ(Actives(), 1);
}

TEST_F(FailoverTest, ForcedWithTheOldPrimaryUnreachableWaitsOutTheLease) {
  ASSERT_TRUE(voter_->Grant({"a", 1, seconds(2)})->granted);
  b_.outstanding = milliseconds(1500);
  b_.replay_step = 0;  // b lost its primary: it replays nothing more
  RegionView seen = a_.view;
  seen.current_lsn = 1200;
  last_views_["a"] = seen;
  a_.reachable = false;

  const MonoTime start = clock_.Now();
  OperationRow op = MustBegin("failover", "forced");
  FailoverOutcome out = MustRun(op);
  EXPECT_EQ(out.state, "succeeded") << out.detail;
  EXPECT_EQ(out.active, "b");
  EXPECT_EQ(out.epoch, 2);
  ASSERT_TRUE(b_.promoted_at);
  EXPECT_GE(*b_.promoted_at, start + seconds(2));
  EXPECT_LT(*b_.promoted_at, start + seconds(2) + milliseconds(100));
  EXPECT_EQ(out.loss_bytes, 300);  // 1200 last seen on a, 900 replayed on b
  EXPECT_DOUBLE_EQ(out.loss_seconds, 0.5);
  EXPECT_GE(out.rto_seconds, 2.0);
  EXPECT_TRUE(Has(out.detail, "asks again later")) << out.detail;  // a could not rejoin
  EXPECT_EQ(calls_, (std::vector<std::string>{"b.Promise 2", "b.Promote 2"}));
  EXPECT_EQ(steps_, (std::vector<std::string>{"raising_epoch", "waiting_leases", "promoting",
                                              "rejoining", "succeeded"}));
  PairRow p = StoredPair();
  EXPECT_EQ(p.active, "b");
  EXPECT_EQ(p.standby, "a");
}

TEST_F(FailoverTest, ForcedWaitsForTheTargetsOwnGrants) {
  b_.outstanding = seconds(3);
  a_.reachable = false;
  const MonoTime start = clock_.Now();
  FailoverOutcome out = MustRun(MustBegin("failover", "forced"));
  EXPECT_EQ(out.state, "succeeded");
  ASSERT_TRUE(b_.promoted_at);
  EXPECT_GE(*b_.promoted_at, start + seconds(3));
  EXPECT_EQ(out.loss_bytes, -1);  // a was never seen
}

TEST_F(FailoverTest, ForcedIgnoresTheControlPlanesGrantsToTheTarget) {
  // A grant to b (say, b held the lease long ago) does not keep a alive.
  ASSERT_TRUE(voter_->Grant({"b", 1, seconds(30)})->granted);
  a_.reachable = false;
  const MonoTime start = clock_.Now();
  FailoverOutcome out = MustRun(MustBegin("failover", "forced"));
  EXPECT_EQ(out.state, "succeeded");
  EXPECT_LT(*b_.promoted_at, start + seconds(1));
}

TEST_F(FailoverTest, ForcedDeclaredDeadSkipsTheWait) {
  ASSERT_TRUE(voter_->Grant({"a", 1, seconds(2)})->granted);
  b_.outstanding = seconds(2);
  a_.reachable = false;
  const MonoTime start = clock_.Now();
  FailoverOutcome out = MustRun(MustBegin("failover", "forced", false, /*declare_dead=*/true));
  EXPECT_EQ(out.state, "succeeded") << out.detail;
  ASSERT_TRUE(b_.promoted_at);
  EXPECT_EQ(*b_.promoted_at, start);
  EXPECT_TRUE(Has(out.detail, "declared a dead")) << out.detail;
  EXPECT_EQ(std::count(steps_.begin(), steps_.end(), "waiting_leases"), 0);
}

TEST_F(FailoverTest, ForcedFencesAReachableOldPrimary) {
  FailoverOutcome out = MustRun(MustBegin("failover", "forced"));
  EXPECT_EQ(out.state, "succeeded");
  EXPECT_EQ(calls_, (std::vector<std::string>{"b.Promise 2", "a.Promise 2", "b.Promote 2",
                                              "a.Rejoin 2 b"}));
  EXPECT_TRUE(Has(out.detail, "a promised epoch 2 and is fenced")) << out.detail;
  EXPECT_EQ(Actives(), 1);
}

TEST_F(FailoverTest, ForcedFailsWhenTheTargetIsLostBeforePromoting) {
  a_.reachable = false;
  OperationRow op = MustBegin("failover", "forced");
  b_.reachable = false;
  FailoverOutcome out = MustRun(op);
  EXPECT_EQ(out.state, "failed");
  EXPECT_TRUE(Has(out.detail, "b did not promise epoch 2")) << out.detail;
  PairRow p = StoredPair();
  EXPECT_EQ(p.epoch, 1);
  EXPECT_EQ(p.active, "a");
  EXPECT_EQ(p.promised, 2);  // the control plane's promise stays
  EXPECT_FALSE(b_.promoted_at);
}

TEST_F(FailoverTest, PromotionThatNeverAnswersFailsWithoutChangingTheActiveRegion) {
  b_.failing.insert("Promote");
  FailoverOutcome out = MustRun(MustBegin("failover", "planned"));
  EXPECT_EQ(out.state, "failed");
  EXPECT_TRUE(Has(out.detail, "may or may not be primary")) << out.detail;
  EXPECT_EQ(StoredPair().active, "a");
  // Never rolled back once promoting: a stays stepped down.
  EXPECT_EQ(a_.view.role, "stepped_down");
  EXPECT_EQ(std::count(calls_.begin(), calls_.end(), "a.Resume 1"), 0);
}

TEST_F(FailoverTest, RefusesWhileAnOperationRuns) {
  OperationRow op = MustBegin("failover", "planned");
  Status st = failover_->Check("failover", "planned", false);
  EXPECT_EQ(st.code(), Code::kFailedPrecondition);
  EXPECT_TRUE(Has(st.message(), "operation " + std::to_string(op.id))) << st.message();
  EXPECT_EQ(failover_->Begin("failover", "forced", false, false, "user alice").status().code(),
            Code::kFailedPrecondition);
}

TEST_F(FailoverTest, RefusesATargetThatIsDownOrNotAStreamingStandby) {
  b_.reachable = false;
  for (const char* mode : {"planned", "forced"}) {
    Status st = failover_->Check("failover", mode, false);
    EXPECT_EQ(st.code(), Code::kFailedPrecondition) << mode;
    EXPECT_TRUE(Has(st.message(), "b cannot be reached")) << st.message();
  }
  b_.reachable = true;

  b_.view.streaming = false;
  Status st = failover_->Check("failover", "planned", false);
  EXPECT_EQ(st.code(), Code::kFailedPrecondition);
  EXPECT_TRUE(Has(st.message(), "not streaming")) << st.message();
  // A forced failover promotes what the standby has, streaming or not.
  EXPECT_TRUE(failover_->Check("failover", "forced", false).ok());

  b_.view.role = "rejoining";
  st = failover_->Check("failover", "forced", false);
  EXPECT_EQ(st.code(), Code::kFailedPrecondition);
  EXPECT_TRUE(Has(st.message(), "not a standby")) << st.message();
  EXPECT_FALSE(store_->RunningOperation()->has_value());
}

TEST_F(FailoverTest, PlannedRefusesWhenTheActiveRegionIsUnreachable) {
  a_.reachable = false;
  Status st = failover_->Check("failover", "planned", false);
  EXPECT_EQ(st.code(), Code::kFailedPrecondition);
  EXPECT_TRUE(Has(st.message(), "active region a cannot be reached")) << st.message();
  EXPECT_TRUE(failover_->Check("failover", "forced", false).ok());
}

TEST_F(FailoverTest, RefusesUnknownKindsAndModes) {
  EXPECT_EQ(failover_->Check("switch", "planned", false).code(), Code::kInvalidArgument);
  EXPECT_EQ(failover_->Check("failover", "gentle", false).code(), Code::kInvalidArgument);
  EXPECT_EQ(failover_->Check("failback", "forced", false).code(), Code::kInvalidArgument);
}

TEST_F(FailoverTest, FailbackRefusedWhileTheOriginalPrimaryIsActive) {
  Status st = failover_->Check("failback", "planned", false);
  EXPECT_EQ(st.code(), Code::kFailedPrecondition);
  EXPECT_TRUE(Has(st.message(), "already active")) << st.message();
}

// After a failover to b, a comes back as b's replica and the pair fails back.
TEST_F(FailoverTest, FailbackWaitsForTheReverseSyncThenSucceeds) {
  ASSERT_EQ(MustRun(MustBegin("failover", "planned")).state, "succeeded");
  // a rejoined: a streaming replica of b, a little behind.
  a_.view.role = "standby";
  a_.view.in_recovery = true;
  a_.view.streaming = true;
  a_.view.resync_state = "rewinding";
  a_.view.resync_detail = "pg_rewind is copying changed blocks";
  a_.view.replay_lsn = 1000;
  b_.view.current_lsn = 1000 + (uint64_t{20} << 20);
  a_.replay_target = b_.view.current_lsn;
  a_.replay_step = 0;

  Status st = failover_->Check("failback", "planned", false);
  EXPECT_EQ(st.code(), Code::kFailedPrecondition);
  EXPECT_TRUE(Has(st.message(), "reverse sync has not caught up")) << st.message();
  EXPECT_TRUE(Has(st.message(), "rewinding")) << st.message();

  a_.view.resync_state = "streaming";
  st = failover_->Check("failback", "planned", false);
  EXPECT_EQ(st.code(), Code::kFailedPrecondition);
  EXPECT_TRUE(Has(st.message(), "20.0 MiB behind")) << st.message();

  a_.view.replay_lsn = b_.view.current_lsn - (uint64_t{1} << 20);
  a_.replay_step = 1 << 20;
  calls_.clear();
  steps_.clear();
  OperationRow op = MustBegin("failback", "planned");
  EXPECT_EQ(op.kind, "failback");
  EXPECT_EQ(op.from, "b");
  EXPECT_EQ(op.to, "a");
  EXPECT_EQ(op.epoch_to, 3);
  FailoverOutcome out = MustRun(op);
  EXPECT_EQ(out.state, "succeeded") << out.detail;
  EXPECT_EQ(out.active, "a");
  EXPECT_EQ(out.epoch, 3);
  EXPECT_EQ(calls_, (std::vector<std::string>{"b.StepDown 2", "a.Promise 3", "a.Promote 3",
                                              "b.Rejoin 3 a"}));
  PairRow p = StoredPair();
  EXPECT_EQ(p.active, "a");
  EXPECT_EQ(p.standby, "b");
  EXPECT_EQ(p.original_primary, "a");
  EXPECT_EQ(Actives(), 1);
}

TEST_F(FailoverTest, RunRefusesAnOperationThatIsNotRunning) {
  OperationRow op = MustBegin("failover", "planned");
  op.state = "succeeded";
  EXPECT_EQ(failover_->Run(op).status().code(), Code::kFailedPrecondition);
  EXPECT_EQ(failover_->Resume(op).status().code(), Code::kFailedPrecondition);
}

// A crash of the control plane at a step, then a restart that resumes the operation.
struct CrashCase {
  std::string mode;   // "planned", "planned+fall_through" or "forced"
  std::string step;   // the step at which the control plane stops ("promoted": inside Promote)
  std::string state;  // the end state after the restart
  int64_t epoch;      // the pair's epoch at the end
  std::string active;
};

class FailoverCrashTest : public FailoverTest, public ::testing::WithParamInterface<CrashCase> {};

TEST_P(FailoverCrashTest, ResumeRollsBackOrCompletesAndNeverLeavesTwoActives) {
  const CrashCase& c = GetParam();
  if (c.step == "promoted") {
    // b promoted, but the control plane died before it heard the answer.
    b_.after_promote = [] { throw Crash{}; };
  } else {
    crash_at_ = c.step;
  }
  const bool fall_through = c.mode == "planned+fall_through";
  OperationRow op = MustBegin("failover", fall_through ? "planned" : c.mode, fall_through);
  EXPECT_THROW((void)failover_->Run(op), Crash);
  EXPECT_LE(Actives(), 1);

  // Restart: a new store handle, a voter that knows nothing of its grants for 2 s, a new
  // failover; the running operation is picked up from the store.
  crash_at_.clear();
  b_.after_promote = nullptr;
  OpenControlPlane(seconds(2));
  auto running = store_->RunningOperation();
  ASSERT_TRUE(running.ok());
  ASSERT_TRUE(running->has_value());
  EXPECT_EQ((*running)->id, op.id);
  const std::string crashed_step = (*running)->step;
  if (c.step != "promoted") {
    EXPECT_EQ(crashed_step, c.step);
  }

  const MonoTime restarted = clock_.Now();
  auto out = failover_->Resume(**running);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->state, c.state) << out->detail;
  EXPECT_EQ(out->epoch, c.epoch);
  EXPECT_EQ(out->active, c.active);
  if (c.state == "rolled_back") {
    EXPECT_EQ(out->detail, "the control plane restarted during the failover; rolled back");
  }
  // A forced failover that starts again from raising_epoch waits out the restarted voter's
  // unknown grants.
  if (c.mode != "planned" && crashed_step != "promoting" && crashed_step != "rejoining") {
    EXPECT_GE(*b_.promoted_at, restarted + seconds(2));
  }

  EXPECT_EQ(Actives(), 1);
  PairRow p = StoredPair();
  EXPECT_EQ(p.active, c.active);
  EXPECT_EQ(p.epoch, c.epoch);
  const FakeLink& active = c.active == "a" ? a_ : b_;
  EXPECT_EQ(active.view.role, "active");
  EXPECT_EQ(active.view.epoch, c.epoch);
  EXPECT_FALSE(store_->RunningOperation()->has_value());
  EXPECT_EQ(StoredOp(op.id).state, c.state);
}

INSTANTIATE_TEST_SUITE_P(
    Steps, FailoverCrashTest,
    ::testing::Values(CrashCase{"planned", "stepping_down", "rolled_back", 1, "a"},
                      CrashCase{"planned", "catching_up", "rolled_back", 1, "a"},
                      // Recorded, but the control plane had not promised yet.
                      CrashCase{"planned", "raising_epoch", "rolled_back", 1, "a"},
                      // Promised: a resumes at the raised epoch.
                      CrashCase{"planned", "waiting_leases", "rolled_back", 2, "a"},
                      CrashCase{"planned", "promoting", "succeeded", 2, "b"},
                      CrashCase{"planned", "promoted", "succeeded", 2, "b"},
                      CrashCase{"planned", "rejoining", "succeeded", 2, "b"},
                      // Asked to fall through: it goes on as forced instead.
                      CrashCase{"planned+fall_through", "catching_up", "succeeded", 2, "b"},
                      CrashCase{"forced", "raising_epoch", "succeeded", 2, "b"},
                      CrashCase{"forced", "waiting_leases", "succeeded", 2, "b"},
                      CrashCase{"forced", "promoting", "succeeded", 2, "b"},
                      CrashCase{"forced", "promoted", "succeeded", 2, "b"},
                      CrashCase{"forced", "rejoining", "succeeded", 2, "b"}),
    [](const ::testing::TestParamInfo<CrashCase>& info) {
      std::string name = info.param.mode + "_at_" + info.param.step;
      std::replace(name.begin(), name.end(), '+', '_');
      return name;
    });

}  // namespace
}  // namespace tandem::control
