#include "replication/log_shipper.h"

#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/fs.h"
#include "replication/replicating_log_store.h"

namespace tandem::replication {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// A sink in front of a StoreSink that misbehaves on request.
class FaultySink final : public ChunkSink {
 public:
  explicit FaultySink(logs::LogStore& store) : inner_(store) {}

  Result<std::vector<ApplyResult>> Apply(const std::vector<Chunk>& chunks) override {
    ++calls;
    if (fail_next > 0) {
      --fail_next;
      return Unavailable("the peer region is unreachable");
    }
    if (corrupt_next > 0) {
      --corrupt_next;
      std::vector<Chunk> damaged = chunks;
      damaged[0].data[0] = static_cast<char>(damaged[0].data[0] ^ 0x20);
      return inner_.Apply(damaged);
    }
    auto results = inner_.Apply(chunks);
    if (drop_acks > 0) {
      --drop_acks;
      return Unavailable("the answer was lost");
    }
    return results;
  }

  std::atomic<int> calls{0};
  std::atomic<int> fail_next{0};
  std::atomic<int> corrupt_next{0};
  std::atomic<int> drop_acks{0};

 private:
  StoreSink inner_;
};

class LogShipperTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("tandem-log-shipper");
    ASSERT_TRUE(dir.ok()) << dir.status().ToString();
    dir_.emplace(std::move(dir).value());
    clock_.SetWall(WallTime(seconds(1700000000)));
    auto source = logs::DirLogStore::Open(dir_->path() + "/source");
    ASSERT_TRUE(source.ok());
    source_ = std::move(source).value();
    auto dest = logs::DirLogStore::Open(dir_->path() + "/dest");
    ASSERT_TRUE(dest.ok());
    dest_ = std::move(dest).value();
    OpenSource();
  }

  void OpenSource() {
    shipper_.reset();
    store_.reset();
    journal_.reset();
    JournalOptions jo;
    jo.cursors = {{"peer", true}};
    jo.segment_bytes = 4096;
    jo.memory_bytes = journal_memory_bytes_;
    auto journal = LogJournal::Open(dir_->path() + "/journal", jo, clock_);
    ASSERT_TRUE(journal.ok()) << journal.status().ToString();
    journal_ = std::move(journal).value();
    store_ = std::make_unique<ReplicatingLogStore>(*source_, *journal_);
    auto sink = std::make_unique<FaultySink>(*dest_);
    sink_ = sink.get();
    shipper_ = std::make_unique<LogShipper>(*journal_, *source_, std::move(sink), "peer",
                                            shipper_options_, clock_);
  }

  std::string Contents(logs::LogStore& store, const std::string& key) {
    auto c = store.Read(key, 0, 1 << 20);
    if (!c.ok()) return "<" + c.status().ToString() + ">";
    return c->data;
  }

  void Write(const std::string& key, int lines) {
    for (int i = 0; i < lines; ++i) {
      ASSERT_TRUE(store_->Append(key, key + " line " + std::to_string(i) + "\n").ok());
    }
  }

  // Runs rounds until one reports nothing more to do; returns the first error.
  Status Drain() {
    for (int i = 0; i < 1000; ++i) {
      auto r = shipper_->RunOnce();
      if (!r.ok()) return r.status();
      if (!r->more) return Status::Ok();
    }
    return Internal("the shipper never finished");
  }

  void ExpectReplicated(const std::vector<std::string>& keys) {
    for (const std::string& key : keys) {
      EXPECT_EQ(Contents(*dest_, key), Contents(*source_, key)) << key;
    }
    ShipperStats s = shipper_->stats();
    EXPECT_EQ(s.chunks_behind, 0u);
    EXPECT_EQ(s.bytes_behind, 0u);
  }

  std::optional<TempDir> dir_;
  FakeClock clock_;
  ShipperOptions shipper_options_;
  uint64_t journal_memory_bytes_ = 0;
  std::unique_ptr<logs::DirLogStore> source_, dest_;
  LogJournalPtr journal_;
  std::unique_ptr<ReplicatingLogStore> store_;
  FaultySink* sink_ = nullptr;
  LogShipperPtr shipper_;
};

TEST_F(LogShipperTest, ShipsEveryObjectAndMeasuresTheLag) {
  Write("d/a.log", 5);
  Write("d/b.log", 3);
  Write("d/a.log", 2);
  ShipperStats before = shipper_->stats();
  EXPECT_EQ(before.chunks_behind, 10u);
  EXPECT_GT(before.bytes_behind, 0u);
  clock_.Advance(milliseconds(40));
  ASSERT_TRUE(Drain().ok());
  ExpectReplicated({"d/a.log", "d/b.log"});
  ShipperStats s = shipper_->stats();
  EXPECT_EQ(s.records_shipped, 10u);
  EXPECT_EQ(s.bytes_shipped, before.bytes_behind);
  EXPECT_EQ(sink_->calls, 1);  // one batch, one chunk per object
  EXPECT_EQ(s.batches_sent, 1u);
  EXPECT_EQ(s.chunks_sent, 2u);
  EXPECT_TRUE(s.last_success_at.has_value());
  EXPECT_TRUE(s.last_error.empty()) << s.last_error;
  EXPECT_EQ(s.lag_samples, 10u);
  EXPECT_EQ(s.lag_p50, milliseconds(40));
  EXPECT_EQ(s.lag_p99, milliseconds(40));
}

TEST_F(LogShipperTest, AFaultySinkLosesAndDuplicatesNothing) {
  Write("d/a.log", 4);
  Write("d/b.log", 4);

  // Unreachable twice: nothing acknowledged, the backoff doubles.
  sink_->fail_next = 2;
  MonoTime t0 = clock_.Now();
  EXPECT_EQ(shipper_->RunOnce().status().code(), Code::kUnavailable);
  EXPECT_EQ(shipper_->retry_at(), t0 + milliseconds(100));
  EXPECT_EQ(shipper_->RunOnce().status().code(), Code::kUnavailable);
  EXPECT_EQ(shipper_->retry_at(), t0 + milliseconds(200));
  ShipperStats s = shipper_->stats();
  EXPECT_EQ(s.consecutive_failures, 2u);
  EXPECT_EQ(s.chunks_behind, 8u);
  EXPECT_NE(s.last_error.find("the peer region is unreachable"), std::string::npos) << s.last_error;
  EXPECT_EQ(dest_->Read("d/a.log", 0, 1).status().code(), Code::kNotFound);

  // Applied, but the answer is lost: the cursor stays and the chunks go again.
  sink_->drop_acks = 1;
  EXPECT_FALSE(shipper_->RunOnce().ok());
  EXPECT_EQ(shipper_->stats().chunks_behind, 8u);
  EXPECT_EQ(Contents(*dest_, "d/a.log"), Contents(*source_, "d/a.log"));

  // More lines, then a chunk damaged on the way: refused by the receiver, sent again.
  Write("d/a.log", 3);
  sink_->corrupt_next = 1;
  Status damaged = shipper_->RunOnce().status();
  EXPECT_EQ(damaged.code(), Code::kInvalidArgument) << damaged.ToString();
  EXPECT_NE(shipper_->stats().last_error.find("damaged in transit"), std::string::npos);

  ASSERT_TRUE(Drain().ok());
  ExpectReplicated({"d/a.log", "d/b.log"});
  s = shipper_->stats();
  EXPECT_EQ(s.consecutive_failures, 0u);
  EXPECT_FALSE(shipper_->retry_at().has_value());
  EXPECT_EQ(s.records_shipped, 11u);
  EXPECT_EQ(s.batches_sent, static_cast<uint64_t>(sink_->calls));
}

TEST_F(LogShipperTest, ResumesAfterTheSourceRestartsMidStream) {
  shipper_options_.max_batch_records = 3;
  OpenSource();
  Write("d/a.log", 5);
  Write("d/b.log", 5);
  ASSERT_TRUE(shipper_->RunOnce().ok());  // three records out of ten
  sink_->drop_acks = 1;                   // three more applied but not acknowledged
  EXPECT_FALSE(shipper_->RunOnce().ok());
  EXPECT_EQ(shipper_->stats().chunks_behind, 7u);

  OpenSource();  // the region restarts: journal, store and shipper anew
  EXPECT_EQ(shipper_->stats().chunks_behind, 7u);
  Write("d/a.log", 2);
  ASSERT_TRUE(Drain().ok());
  ExpectReplicated({"d/a.log", "d/b.log"});
}

TEST_F(LogShipperTest, FillsTheReceiversGapFromTheLocalStore) {
  Write("d/a.log", 4);
  ASSERT_TRUE(Drain().ok());
  // The receiver lost the object (its disk was replaced, or it rejoined and removed it).
  ASSERT_TRUE(dest_->Remove("d/a.log").ok());
  Write("d/a.log", 2);
  ASSERT_TRUE(Drain().ok());
  ExpectReplicated({"d/a.log"});
  EXPECT_EQ(shipper_->stats().gaps_filled, 1u);
}

TEST_F(LogShipperTest, LocalBytesGoneOrChangedAreReportedAndNotSent) {
  Write("d/a.log", 2);
  Write("d/b.log", 2);
  Write("d/c.log", 2);
  // Behind the replicating store's back: a's bytes change, c disappears.
  std::string a = Contents(*source_, "d/a.log");
  ASSERT_TRUE(source_->Remove("d/a.log").ok());
  a[0] = 'X';
  ASSERT_TRUE(source_->Append("d/a.log", a).ok());
  ASSERT_TRUE(source_->Remove("d/c.log").ok());

  ASSERT_TRUE(Drain().ok());
  ShipperStats s = shipper_->stats();
  EXPECT_EQ(s.records_corrupt, 1u);     // a's first line; its second still matches
  EXPECT_EQ(s.records_unreadable, 2u);  // both of c's
  EXPECT_EQ(s.chunks_behind, 0u);
  EXPECT_NE(s.last_error.find("d/"), std::string::npos) << s.last_error;
  EXPECT_EQ(Contents(*dest_, "d/b.log"), Contents(*source_, "d/b.log"));
  EXPECT_EQ(dest_->Read("d/c.log", 0, 1).status().code(), Code::kNotFound);
  // The changed line itself was never sent; what follows it went through the gap fill from the
  // local store, which holds the changed bytes.
  EXPECT_EQ(Contents(*dest_, "d/a.log"), a);
}

TEST_F(LogShipperTest, AConflictIsCountedAndPassedOver) {
  ASSERT_TRUE(dest_->Append("d/a.log", "something else entirely\n").ok());
  Write("d/a.log", 2);
  Write("d/b.log", 1);
  ASSERT_TRUE(Drain().ok());
  ShipperStats s = shipper_->stats();
  EXPECT_EQ(s.conflicts, 1u);
  EXPECT_NE(s.last_error.find("diverged"), std::string::npos) << s.last_error;
  EXPECT_EQ(s.chunks_behind, 0u);
  EXPECT_EQ(Contents(*dest_, "d/a.log"), "something else entirely\n");
  EXPECT_EQ(Contents(*dest_, "d/b.log"), Contents(*source_, "d/b.log"));
}

TEST_F(LogShipperTest, APausedShipperSendsNothing) {
  shipper_->Pause();
  Write("d/a.log", 2);
  auto r = shipper_->RunOnce();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->records_acked, 0u);
  EXPECT_EQ(sink_->calls, 0);
  EXPECT_TRUE(shipper_->stats().paused);
  EXPECT_EQ(shipper_->stats().chunks_behind, 2u);
  shipper_->Resume();
  ASSERT_TRUE(Drain().ok());
  ExpectReplicated({"d/a.log"});
}

TEST_F(LogShipperTest, DiscardPendingDropsWhatThePeerNeverGot) {
  Write("d/a.log", 2);
  ASSERT_TRUE(Drain().ok());
  Write("d/a.log", 3);
  Write("d/b.log", 1);
  auto dropped = shipper_->DiscardPending();
  ASSERT_TRUE(dropped.ok()) << dropped.status().ToString();
  EXPECT_EQ(dropped->chunks, 4u);
  EXPECT_EQ(dropped->first_offset_by_key.at("d/b.log"), 0u);
  EXPECT_EQ(dropped->first_offset_by_key.at("d/a.log"), Contents(*dest_, "d/a.log").size());
  ASSERT_TRUE(Drain().ok());
  EXPECT_EQ(sink_->calls, 1);  // nothing more was sent
  EXPECT_EQ(dest_->Read("d/b.log", 0, 1).status().code(), Code::kNotFound);
}

TEST_F(LogShipperTest, SendsTheBytesTheJournalHeldWithoutReadingThemBack) {
  journal_memory_bytes_ = 1 << 20;
  OpenSource();
  Write("d/a.log", 3);
  Write("d/b.log", 2);
  const std::string a = Contents(*source_, "d/a.log");
  // Gone from the store before it was shipped: the journal still held every byte.
  ASSERT_TRUE(source_->Remove("d/a.log").ok());
  ASSERT_TRUE(Drain().ok());
  EXPECT_EQ(Contents(*dest_, "d/a.log"), a);
  EXPECT_EQ(Contents(*dest_, "d/b.log"), Contents(*source_, "d/b.log"));
  EXPECT_EQ(shipper_->stats().records_unreadable, 0u);
  EXPECT_EQ(shipper_->stats().chunks_behind, 0u);
  EXPECT_EQ(journal_->memory_bytes_held(), 0u);  // every cursor passed them

  // When the memory is full the older chunks are read back from the store, the newer sent from
  // memory, in order.
  journal_memory_bytes_ = 50;  // two lines of 15 bytes with their 7-byte key
  OpenSource();
  Write("d/c.log", 6);
  Write("d/b.log", 3);
  EXPECT_GT(journal_->memory_bytes_held(), 0u);
  EXPECT_LE(journal_->memory_bytes_held(), 50u);
  ASSERT_TRUE(Drain().ok());
  ExpectReplicated({"d/b.log", "d/c.log"});
  EXPECT_EQ(journal_->memory_bytes_held(), 0u);
}

// Waits (bounded) until `done` holds; the assertion is on `done`, not on the time.
bool WaitFor(const std::function<bool()>& done) {
  for (int i = 0; i < 2000 && !done(); ++i) std::this_thread::sleep_for(milliseconds(5));
  return done();
}

TEST_F(LogShipperTest, TheThreadShipsOnAppendAndRetriesAfterItsBackoff) {
  shipper_options_.idle_poll = std::chrono::hours(1);  // only appends wake it
  OpenSource();
  shipper_->Start();
  Write("d/a.log", 3);
  EXPECT_TRUE(WaitFor([&] { return shipper_->stats().chunks_behind == 0; }));
  EXPECT_EQ(Contents(*dest_, "d/a.log"), Contents(*source_, "d/a.log"));

  sink_->fail_next = 1;
  int calls = sink_->calls;
  Write("d/a.log", 1);
  ASSERT_TRUE(WaitFor([&] { return shipper_->stats().consecutive_failures == 1; }));
  EXPECT_EQ(sink_->calls, calls + 1);
  ASSERT_TRUE(shipper_->retry_at().has_value());
  // The fake clock has not moved: the thread is still waiting out its backoff.
  EXPECT_EQ(shipper_->stats().chunks_behind, 1u);
  clock_.Advance(milliseconds(100));
  EXPECT_TRUE(WaitFor([&] { return shipper_->stats().chunks_behind == 0; }));
  EXPECT_EQ(Contents(*dest_, "d/a.log"), Contents(*source_, "d/a.log"));

  shipper_->Pause();
  Write("d/a.log", 1);
  EXPECT_TRUE(shipper_->stats().paused);
  shipper_->Resume();
  EXPECT_TRUE(WaitFor([&] { return shipper_->stats().chunks_behind == 0; }));
  shipper_->Stop();
  EXPECT_FALSE(shipper_->stats().running);
}

TEST_F(LogShipperTest, AppendsWithinTheBatchIntervalGoInOneBatchButABacklogOrAFlushGoesAtOnce) {
  shipper_options_.idle_poll = std::chrono::hours(1);
  shipper_options_.batch_interval = milliseconds(100);
  shipper_options_.max_batch_records = 1;
  OpenSource();
  shipper_->Start();
  Write("d/a.log", 1);  // the first round goes at once
  ASSERT_TRUE(WaitFor([&] { return shipper_->stats().chunks_behind == 0; }));
  const int calls = sink_->calls;

  // Within the interval (the fake clock stands still): appends wait, and wake nothing.
  Write("d/b.log", 1);
  std::this_thread::sleep_for(milliseconds(150));
  EXPECT_EQ(sink_->calls, calls);
  EXPECT_EQ(shipper_->stats().chunks_behind, 1u);
  clock_.Advance(milliseconds(100));
  ASSERT_TRUE(WaitFor([&] { return shipper_->stats().chunks_behind == 0; }));
  EXPECT_EQ(sink_->calls, calls + 1);

  // A flush being waited for does not wait out the interval.
  Write("d/c.log", 1);
  std::this_thread::sleep_for(milliseconds(60));
  EXPECT_EQ(sink_->calls, calls + 1);
  shipper_->Hurry();
  ASSERT_TRUE(WaitFor([&] { return shipper_->stats().chunks_behind == 0; }));
  EXPECT_EQ(sink_->calls, calls + 2);

  // A backlog (three records, one a batch) is sent round after round, not one an interval.
  clock_.Advance(milliseconds(100));
  shipper_->Pause();
  Write("d/a.log", 1);
  Write("d/b.log", 1);
  Write("d/c.log", 1);
  shipper_->Resume();
  EXPECT_TRUE(WaitFor([&] { return shipper_->stats().chunks_behind == 0; }));
  EXPECT_EQ(sink_->calls, calls + 5);
  for (const char* key : {"d/a.log", "d/b.log", "d/c.log"}) {
    EXPECT_EQ(Contents(*dest_, key), Contents(*source_, key)) << key;
  }
  shipper_->Stop();
}

TEST(LagHistogramTest, QuantilesAreWithinABucket) {
  LagHistogram h;
  EXPECT_EQ(h.Quantile(0.5), Duration::zero());
  for (int ms = 1; ms <= 100; ++ms) h.Record(milliseconds(ms));
  EXPECT_EQ(h.count(), 100u);
  EXPECT_EQ(h.max(), milliseconds(100));
  auto p50 = std::chrono::duration_cast<milliseconds>(h.Quantile(0.5)).count();
  auto p99 = std::chrono::duration_cast<milliseconds>(h.Quantile(0.99)).count();
  EXPECT_GE(p50, 50);
  EXPECT_LE(p50, 55);
  EXPECT_GE(p99, 99);
  EXPECT_LE(p99, 100);
  h.Reset();
  EXPECT_EQ(h.count(), 0u);
  h.Record(seconds(-1));  // a wall clock that stepped back counts as zero
  EXPECT_EQ(h.Quantile(0.5), milliseconds(0));
  EXPECT_EQ(h.max(), milliseconds(0));
}

TEST(LagHistogramTest, CountAtMostNeverCountsASampleOverTheBound) {
  LagHistogram h;
  for (int i = 0; i < 99; ++i) h.Record(milliseconds(50));
  h.Record(seconds(5));
  EXPECT_EQ(h.CountAtMost(milliseconds(10)), 0u);
  EXPECT_EQ(h.CountAtMost(seconds(1)), 99u);
  EXPECT_EQ(h.CountAtMost(milliseconds(4999)), 99u);
  EXPECT_EQ(h.CountAtMost(seconds(7200)), 100u);
  h.Record(milliseconds(1001));  // in a bucket that straddles nothing below 1 s
  EXPECT_EQ(h.CountAtMost(seconds(1)), 99u);
}

}  // namespace
}  // namespace tandem::replication
