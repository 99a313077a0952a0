#include "replication/replicating_log_store.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/fs.h"
#include "replication/apply_chunk.h"
#include "replication/chunk.h"

namespace tandem::replication {
namespace {

class ReplicatingLogStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("tandem-replicating-store");
    ASSERT_TRUE(dir.ok()) << dir.status().ToString();
    dir_.emplace(std::move(dir).value());
    auto inner = logs::DirLogStore::Open(dir_->path() + "/logs");
    ASSERT_TRUE(inner.ok()) << inner.status().ToString();
    inner_ = std::move(inner).value();
    JournalOptions jo;
    jo.cursors = {{"peer", true}, {"s3", false}};
    auto journal = LogJournal::Open(dir_->path() + "/journal", jo, clock_);
    ASSERT_TRUE(journal.ok()) << journal.status().ToString();
    journal_ = std::move(journal).value();
  }

  std::vector<JournalRecord> Records(const std::string& cursor) {
    auto b = journal_->ReadPending(cursor, 100000, uint64_t{1} << 40);
    EXPECT_TRUE(b.ok()) << b.status().ToString();
    return b.ok() ? b->records : std::vector<JournalRecord>{};
  }

  std::optional<TempDir> dir_;
  FakeClock clock_;
  std::unique_ptr<logs::DirLogStore> inner_;
  LogJournalPtr journal_;
};

TEST_F(ReplicatingLogStoreTest, JournalsEveryAppendWithItsOffsetAndChecksum) {
  ReplicatingLogStore store(*inner_, *journal_);
  ASSERT_TRUE(store.Append("d/t.log", "abc").ok());
  ASSERT_TRUE(store.Append("d/t.log", "de").ok());
  ASSERT_TRUE(store.Append("d/u.log", "xyz\n").ok());
  ASSERT_TRUE(store.Append("d/t.log", "").ok());  // nothing to journal
  std::vector<JournalRecord> r = Records("s3");
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].key, "d/t.log");
  EXPECT_EQ(r[0].offset, 0u);
  EXPECT_EQ(r[0].length, 3u);
  EXPECT_EQ(r[0].checksum, Crc32c("abc"));
  EXPECT_EQ(r[1].offset, 3u);
  EXPECT_EQ(r[1].checksum, Crc32c("de"));
  EXPECT_EQ(r[2].key, "d/u.log");
  EXPECT_EQ(r[2].offset, 0u);
  EXPECT_EQ(r[0].origin, Origin::kLocal);
  auto read = store.Read("d/t.log", 0, 100);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->data, "abcde");
  EXPECT_EQ(store.Append("../x", "a").code(), Code::kInvalidArgument);
  EXPECT_EQ(journal_->last_seq(), 3u);
}

TEST_F(ReplicatingLogStoreTest, LearnsTheSizeOfAnObjectItHasNotWritten) {
  ASSERT_TRUE(inner_->Append("d/t.log", "hello").ok());
  ReplicatingLogStore store(*inner_, *journal_);
  ASSERT_TRUE(store.Append("d/t.log", "!").ok());
  std::vector<JournalRecord> r = Records("s3");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].offset, 5u);
  // After a removal the object starts again at 0.
  ASSERT_TRUE(store.Remove("d/t.log").ok());
  ASSERT_TRUE(store.Append("d/t.log", "again").ok());
  r = Records("s3");
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[1].offset, 0u);
}

TEST_F(ReplicatingLogStoreTest, RefusesAppendsPastTheBoundUntilTheSinkCatchesUp) {
  ReplicatingLogStoreOptions options;
  options.max_unacked_bytes = 100;
  ReplicatingLogStore store(*inner_, *journal_, options);
  // With nothing pending even an append larger than the bound goes through.
  ASSERT_TRUE(store.Append("d/big.log", std::string(150, 'b')).ok());
  ASSERT_TRUE(journal_->Acknowledge("peer", 1).ok());
  ASSERT_TRUE(journal_->Acknowledge("s3", 1).ok());

  ASSERT_TRUE(store.Append("d/t.log", std::string(60, 'a')).ok());
  Status s = store.Append("d/t.log", std::string(50, 'a'));
  EXPECT_EQ(s.code(), Code::kUnavailable);
  EXPECT_NE(s.message().find("log replication to peer is 60 bytes (1 chunks) behind, over the "
                             "bound of 100"),
            std::string::npos)
      << s.message();
  auto size = inner_->Read("d/t.log", 0, 0);
  ASSERT_TRUE(size.ok());
  EXPECT_EQ(size->size, 60u);  // nothing written
  EXPECT_EQ(journal_->last_seq(), 2u);

  // The peer catches up; s3 is now the one behind.
  ASSERT_TRUE(journal_->Acknowledge("peer", 2).ok());
  s = store.Append("d/t.log", std::string(50, 'a'));
  EXPECT_EQ(s.code(), Code::kUnavailable);
  EXPECT_NE(s.message().find("log replication to s3 is 60 bytes"), std::string::npos)
      << s.message();
  ASSERT_TRUE(journal_->Acknowledge("s3", 2).ok());
  ASSERT_TRUE(store.Append("d/t.log", std::string(50, 'a')).ok());
  std::vector<JournalRecord> r = Records("peer");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].offset, 60u);
}

TEST_F(ReplicatingLogStoreTest, TheReplicaViewJournalsReplicatedChunks) {
  ReplicatingLogStoreOptions options;
  options.max_unacked_bytes = 10;
  ReplicatingLogStore store(*inner_, *journal_, options);
  ApplyResult r = ApplyChunk(store.replica_view(), MakeChunk("d/t.log", 0, "from the peer\n"));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(Records("peer").empty());  // never sent back to where it came from
  std::vector<JournalRecord> s3 = Records("s3");
  ASSERT_EQ(s3.size(), 1u);
  EXPECT_EQ(s3[0].origin, Origin::kReplicated);
  // A duplicate writes and journals nothing.
  r = ApplyChunk(store.replica_view(), MakeChunk("d/t.log", 0, "from the peer\n"));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(journal_->last_seq(), 1u);
  // s3 is over the bound: replicated chunks wait too (the peer sends them again later).
  r = ApplyChunk(store.replica_view(), MakeChunk("d/t.log", 14, "more\n"));
  EXPECT_EQ(r.status.code(), Code::kUnavailable);
  // Local appends are held back by s3 as well.
  EXPECT_EQ(store.Append("d/u.log", "x").code(), Code::kUnavailable);
}

TEST_F(ReplicatingLogStoreTest, WhatNoCursorWouldSendIsNotJournaled) {
  // A standby without an object store: its only cursor, the peer's, is local-only.
  JournalOptions jo;
  jo.cursors = {{"peer", true}};
  auto journal = LogJournal::Open(dir_->path() + "/peer-only", jo, clock_);
  ASSERT_TRUE(journal.ok()) << journal.status().ToString();
  EXPECT_TRUE((*journal)->Wants(Origin::kLocal));
  EXPECT_FALSE((*journal)->Wants(Origin::kReplicated));
  ReplicatingLogStore store(*inner_, **journal);
  ApplyResult r = store.ApplyReplicated(MakeChunk("d/t.log", 0, "from the peer\n"));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  r = ApplyChunk(store.replica_view(), MakeChunk("d/t.log", 14, "more\n"));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ((*journal)->last_seq(), 0u);
  auto all = inner_->Read("d/t.log", 0, 100);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->data, "from the peer\nmore\n");
  // Its own appends are journaled as before.
  ASSERT_TRUE(store.Append("d/t.log", "local\n").ok());
  EXPECT_EQ((*journal)->last_seq(), 1u);
}

TEST_F(ReplicatingLogStoreTest, ApplyReplicatedAppendsInOrderAndComparesEverythingElse) {
  ReplicatingLogStore store(*inner_, *journal_);
  // In order: appended (without reading back) and journaled as replicated.
  ApplyResult r = store.ApplyReplicated(MakeChunk("d/t.log", 0, "one\n"));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.receiver_size, 4u);
  r = store.ApplyReplicated(MakeChunk("d/t.log", 4, "two\n"));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.receiver_size, 8u);
  std::vector<JournalRecord> s3 = Records("s3");
  ASSERT_EQ(s3.size(), 2u);
  EXPECT_EQ(s3[1].offset, 4u);
  EXPECT_EQ(s3[1].origin, Origin::kReplicated);
  EXPECT_TRUE(Records("peer").empty());
  // A resend of what is here: nothing written.
  r = store.ApplyReplicated(MakeChunk("d/t.log", 0, "one\ntwo\n"));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(journal_->last_seq(), 2u);
  // An overlap that continues: only the new part is appended.
  r = store.ApplyReplicated(MakeChunk("d/t.log", 4, "two\nthree\n"));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.receiver_size, 14u);
  // A gap, a conflict and a damaged chunk change nothing.
  r = store.ApplyReplicated(MakeChunk("d/t.log", 20, "later\n"));
  EXPECT_TRUE(r.gap());
  EXPECT_EQ(r.receiver_size, 14u);
  r = store.ApplyReplicated(MakeChunk("d/t.log", 0, "ONE\n"));
  EXPECT_TRUE(r.conflict());
  Chunk damaged = MakeChunk("d/t.log", 14, "four\n");
  damaged.checksum ^= 1;
  EXPECT_EQ(store.ApplyReplicated(damaged).status.code(), Code::kInvalidArgument);
  EXPECT_EQ(store.ApplyReplicated(MakeChunk("../x.log", 0, "x")).status.code(),
            Code::kInvalidArgument);
  auto all = inner_->Read("d/t.log", 0, 100);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->data, "one\ntwo\nthree\n");
  EXPECT_EQ(journal_->last_seq(), 3u);
}

TEST_F(ReplicatingLogStoreTest, ConcurrentAppendsToOneObjectJournalContiguousRanges) {
  ReplicatingLogStore store(*inner_, *journal_);
  constexpr int kThreads = 4, kAppends = 150;
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&store, t] {
      for (int i = 0; i < kAppends; ++i) {
        std::string line(static_cast<size_t>(1 + (i + t) % 7), static_cast<char>('a' + t));
        ASSERT_TRUE(store.Append("d/t.log", line + "\n").ok());
        ASSERT_TRUE(store.Append("d/other-" + std::to_string(t) + ".log", "x").ok());
      }
    });
  }
  for (std::thread& t : threads) t.join();
  auto all = inner_->Read("d/t.log", 0, 1 << 20);
  ASSERT_TRUE(all.ok());
  uint64_t expect = 0;
  for (const JournalRecord& r : Records("s3")) {
    if (r.key != "d/t.log") continue;
    ASSERT_EQ(r.offset, expect);
    ASSERT_EQ(Crc32c(std::string_view(all->data).substr(r.offset, r.length)), r.checksum);
    expect += r.length;
  }
  EXPECT_EQ(expect, all->size);
}

}  // namespace
}  // namespace tandem::replication
