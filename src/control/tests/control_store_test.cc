#include "control/control_store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/fs.h"

namespace tandem::control {
namespace {

class ControlStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("tandem-control-store");
    ASSERT_TRUE(dir.ok()) << dir.status().ToString();
    dir_.emplace(std::move(dir).value());
    path_ = dir_->path() + "/control.db";
    Reopen();
  }

  // Closes the store (if open) and opens it again on the same file: a restart.
  void Reopen() {
    store_.reset();
    auto store = ControlStore::Open(path_);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
  }

  PairRow InitialPair() {
    PairRow p;
    p.active = "a";
    p.standby = "b";
    p.original_primary = "a";
    return p;
  }

  OperationRow PlannedOp() {
    OperationRow op;
    op.kind = "failover";
    op.mode = "planned";
    op.from = "a";
    op.to = "b";
    op.epoch_from = 1;
    op.epoch_to = 2;
    op.step = "started";
    op.started_ms = 1700000000000;
    return op;
  }

  std::optional<TempDir> dir_;
  std::string path_;
  ControlStorePtr store_;
};

TEST_F(ControlStoreTest, PairIsAbsentUntilInitialised) {
  EXPECT_EQ(store_->Pair().status().code(), Code::kFailedPrecondition);
  EXPECT_EQ(store_->SetPromised(3).code(), Code::kFailedPrecondition);
  EXPECT_EQ(store_->SetPair(InitialPair()).code(), Code::kFailedPrecondition);

  PairRow bad = InitialPair();
  bad.standby = "a";
  EXPECT_EQ(store_->InitPair(bad).status().code(), Code::kInvalidArgument);
  bad = InitialPair();
  bad.original_primary = "c";
  EXPECT_EQ(store_->InitPair(bad).status().code(), Code::kInvalidArgument);
}

TEST_F(ControlStoreTest, InitPairWritesOnlyOnTheFirstStart) {
  auto p = store_->InitPair(InitialPair());
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->epoch, 1);
  EXPECT_EQ(p->active, "a");

  PairRow moved = InitialPair();
  moved.epoch = 4;
  moved.active = "b";
  moved.standby = "a";
  ASSERT_TRUE(store_->SetPair(moved).ok());

  // A second start with the configured initial pair gets what is stored.
  p = store_->InitPair(InitialPair());
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->epoch, 4);
  EXPECT_EQ(p->active, "b");
  EXPECT_EQ(p->standby, "a");
  EXPECT_EQ(p->original_primary, "a");
}

TEST_F(ControlStoreTest, PromisedNeverGoesDownAndTheEpochNeverGoesBack) {
  ASSERT_TRUE(store_->InitPair(InitialPair()).ok());
  ASSERT_TRUE(store_->SetPromised(5).ok());
  ASSERT_TRUE(store_->SetPromised(3).ok());
  EXPECT_EQ(store_->Pair()->promised, 5);

  // A pair row read before the voter raised promised does not lower it.
  PairRow p = InitialPair();
  p.epoch = 2;
  p.promised = 1;
  ASSERT_TRUE(store_->SetPair(p).ok());
  EXPECT_EQ(store_->Pair()->promised, 5);
  EXPECT_EQ(store_->Pair()->epoch, 2);

  p.epoch = 1;
  Status st = store_->SetPair(p);
  EXPECT_EQ(st.code(), Code::kFailedPrecondition);
  EXPECT_NE(st.message().find("epoch 2"), std::string::npos) << st.message();
}

TEST_F(ControlStoreTest, ReopenKeepsEverything) {
  ASSERT_TRUE(store_->InitPair(InitialPair()).ok());
  ASSERT_TRUE(store_->SetPromised(2).ok());
  auto op = store_->BeginOperation(PlannedOp());
  ASSERT_TRUE(op.ok()) << op.status().ToString();
  op->step = "catching_up";
  op->detail = "waiting for b";
  op->loss_bytes = 0;
  op->loss_seconds = 0.25;
  op->rto_seconds = 1.5;
  op->fall_through = true;
  op->started_by = "token ci-deploy";
  ASSERT_TRUE(store_->UpdateOperation(*op).ok());
  EventRow e;
  e.at_ms = 1700000000123;
  e.kind = "failover.step";
  e.region = "b";
  e.epoch = 2;
  e.operation = op->id;
  e.message = "catching up";
  ASSERT_TRUE(store_->AddEvent(e).ok());

  Reopen();

  auto pair = store_->Pair();
  ASSERT_TRUE(pair.ok()) << pair.status().ToString();
  EXPECT_EQ(pair->promised, 2);
  EXPECT_EQ(pair->active, "a");
  auto running = store_->RunningOperation();
  ASSERT_TRUE(running.ok());
  ASSERT_TRUE(running->has_value());
  const OperationRow& r = **running;
  EXPECT_EQ(r.id, op->id);
  EXPECT_EQ(r.kind, "failover");
  EXPECT_EQ(r.mode, "planned");
  EXPECT_EQ(r.from, "a");
  EXPECT_EQ(r.to, "b");
  EXPECT_EQ(r.epoch_from, 1);
  EXPECT_EQ(r.epoch_to, 2);
  EXPECT_TRUE(r.fall_through);
  EXPECT_FALSE(r.declare_dead);
  EXPECT_EQ(r.state, "running");
  EXPECT_EQ(r.step, "catching_up");
  EXPECT_EQ(r.started_ms, 1700000000000);
  EXPECT_EQ(r.detail, "waiting for b");
  EXPECT_EQ(r.loss_bytes, 0);
  EXPECT_DOUBLE_EQ(r.loss_seconds, 0.25);
  EXPECT_DOUBLE_EQ(r.rto_seconds, 1.5);
  EXPECT_EQ(r.started_by, "token ci-deploy");
  auto events = store_->Events(10, 0);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].at_ms, 1700000000123);
  EXPECT_EQ((*events)[0].kind, "failover.step");
  EXPECT_EQ((*events)[0].region, "b");
  EXPECT_EQ((*events)[0].epoch, 2);
  EXPECT_EQ((*events)[0].operation, op->id);
  EXPECT_EQ((*events)[0].message, "catching up");
}

TEST_F(ControlStoreTest, OneRunningOperationAtATime) {
  auto first = store_->BeginOperation(PlannedOp());
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->state, "running");
  EXPECT_GT(first->id, 0);

  auto second = store_->BeginOperation(PlannedOp());
  EXPECT_EQ(second.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(second.status().message().find("operation " + std::to_string(first->id)),
            std::string::npos)
      << second.status().message();

  first->state = "succeeded";
  first->finished_ms = 1700000001000;
  ASSERT_TRUE(store_->UpdateOperation(*first).ok());
  auto none = store_->RunningOperation();
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());

  second = store_->BeginOperation(PlannedOp());
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_GT(second->id, first->id);

  // The index holds even when a caller updates a finished operation back to running.
  first->state = "running";
  EXPECT_EQ(store_->UpdateOperation(*first).code(), Code::kFailedPrecondition);

  auto ops = store_->Operations(10);
  ASSERT_TRUE(ops.ok());
  ASSERT_EQ(ops->size(), 2u);
  EXPECT_EQ((*ops)[0].id, second->id);  // newest first
  EXPECT_EQ((*ops)[1].state, "succeeded");
  EXPECT_EQ(store_->Operations(1)->size(), 1u);

  auto one = store_->Operation(first->id);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->finished_ms, 1700000001000);
  EXPECT_EQ(store_->Operation(999).status().code(), Code::kNotFound);
  OperationRow ghost = PlannedOp();
  ghost.id = 999;
  EXPECT_EQ(store_->UpdateOperation(ghost).code(), Code::kNotFound);
}

TEST_F(ControlStoreTest, EventsPageNewestFirstAndFollowOldestFirst) {
  for (int i = 1; i <= 5; ++i) {
    EventRow e;
    e.at_ms = i;
    e.kind = "health";
    e.message = "event " + std::to_string(i);
    auto added = store_->AddEvent(e);
    ASSERT_TRUE(added.ok());
    EXPECT_EQ(added->id, i);
  }
  auto newest = store_->Events(3, 0);
  ASSERT_TRUE(newest.ok());
  ASSERT_EQ(newest->size(), 3u);
  EXPECT_EQ((*newest)[0].id, 5);
  EXPECT_EQ((*newest)[2].id, 3);
  EXPECT_EQ((*newest)[0].message, "event 5");

  auto follow = store_->Events(2, 2);
  ASSERT_TRUE(follow.ok());
  ASSERT_EQ(follow->size(), 2u);
  EXPECT_EQ((*follow)[0].id, 3);
  EXPECT_EQ((*follow)[1].id, 4);
  EXPECT_TRUE(store_->Events(10, 5)->empty());

  EXPECT_EQ(store_->Events(0, 0).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->Operations(-1).status().code(), Code::kInvalidArgument);
}

TEST_F(ControlStoreTest, ConcurrentWritersEachGetTheirOwnId) {
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([this] {
      for (int i = 0; i < 50; ++i) {
        EventRow e;
        e.kind = "health";
        EXPECT_TRUE(store_->AddEvent(e).ok());
      }
    });
  }
  for (auto& t : threads) t.join();
  auto all = store_->Events(1000, 0);
  ASSERT_TRUE(all.ok());
  std::set<int64_t> ids;
  for (const EventRow& e : *all) ids.insert(e.id);
  EXPECT_EQ(ids.size(), 200u);
}

TEST_F(ControlStoreTest, UsesWriteAheadLogging) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(s, 0)), "wal");
  sqlite3_finalize(s);
  sqlite3_close(db);
}

// A store written before operations kept who started them (schema version 2) opens, gains the
// column, and keeps its operations.
TEST_F(ControlStoreTest, AVersion2StoreGainsStartedBy) {
  ASSERT_TRUE(store_->InitPair(InitialPair()).ok());
  auto op = store_->BeginOperation(PlannedOp());
  ASSERT_TRUE(op.ok());
  store_.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "ALTER TABLE operations DROP COLUMN started_by; PRAGMA user_version=2",
                         nullptr, nullptr, nullptr),
            SQLITE_OK)
      << sqlite3_errmsg(db);
  sqlite3_close(db);
  Reopen();
  auto r = store_->Operation(op->id);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->started_by, "");
  r->started_by = "user alice";
  ASSERT_TRUE(store_->UpdateOperation(*r).ok());
  Reopen();
  EXPECT_EQ(store_->Operation(op->id)->started_by, "user alice");
}

TEST_F(ControlStoreTest, RefusesASchemaNewerThanItKnows) {
  store_.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version=99", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);

  auto store = ControlStore::Open(path_);
  EXPECT_EQ(store.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(store.status().message().find("99"), std::string::npos);
}

TEST_F(ControlStoreTest, APathThatCannotBeCreatedGivesAClearError) {
  const std::string missing = dir_->path() + "/no/such/dir/control.db";
  auto store = ControlStore::Open(missing);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find(missing), std::string::npos) << store.status().ToString();

  // A directory where the file should be.
  auto dir = ControlStore::Open(dir_->path());
  ASSERT_FALSE(dir.ok());
  EXPECT_NE(dir.status().message().find(dir_->path()), std::string::npos)
      << dir.status().ToString();

  EXPECT_EQ(ControlStore::Open("").status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace tandem::control
