#include "replication/log_journal.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/fs.h"

namespace tandem::replication {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class LogJournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("tandem-log-journal");
    ASSERT_TRUE(dir.ok()) << dir.status().ToString();
    dir_.emplace(std::move(dir).value());
    path_ = dir_->path() + "/journal";
    clock_.SetWall(WallTime(seconds(1700000000)));
    options_.cursors = {{"peer", true}, {"s3", false}};
  }

  std::unique_ptr<LogJournal> Open() {
    auto j = LogJournal::Open(path_, options_, clock_);
    EXPECT_TRUE(j.ok()) << j.status().ToString();
    return j.ok() ? std::move(j).value() : nullptr;
  }

  std::vector<std::string> Segments() {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(path_)) {
      std::string name = e.path().filename().string();
      if (name.rfind("segment-", 0) == 0) out.push_back(e.path().string());
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  static uint64_t Append(LogJournal& j, const std::string& key, uint64_t offset, uint64_t length,
                         Origin origin = Origin::kLocal) {
    auto seq = j.Append(key, offset, length, 0xABCD0000u + static_cast<uint32_t>(offset), origin);
    EXPECT_TRUE(seq.ok()) << seq.status().ToString();
    return seq.ok() ? *seq : 0;
  }

  static CursorStats StatsOf(const LogJournal& j, const std::string& cursor) {
    auto s = j.Stats(cursor);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? *s : CursorStats{};
  }

  static std::vector<uint64_t> PendingSeqs(const LogJournal& j, const std::string& cursor) {
    auto b = j.ReadPending(cursor, 1000, uint64_t{1} << 30);
    EXPECT_TRUE(b.ok()) << b.status().ToString();
    std::vector<uint64_t> seqs;
    if (b.ok()) {
      for (const JournalRecord& r : b->records) seqs.push_back(r.seq);
    }
    return seqs;
  }

  std::optional<TempDir> dir_;
  std::string path_;
  FakeClock clock_;
  JournalOptions options_;
};

TEST_F(LogJournalTest, ReadsPendingRecordsPerCursorAndOrigin) {
  auto j = Open();
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(Append(*j, "d/a.log", 0, 10), 1u);
  clock_.Advance(seconds(1));
  EXPECT_EQ(Append(*j, "d/b.log", 0, 20, Origin::kReplicated), 2u);
  EXPECT_EQ(Append(*j, "d/a.log", 10, 5), 3u);

  auto batch = j->ReadPending("peer", 100, 1 << 20);
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  ASSERT_EQ(batch->records.size(), 2u);
  EXPECT_EQ(batch->through_seq, 3u);
  const JournalRecord& r = batch->records[1];
  EXPECT_EQ(r.seq, 3u);
  EXPECT_EQ(r.key, "d/a.log");
  EXPECT_EQ(r.offset, 10u);
  EXPECT_EQ(r.length, 5u);
  EXPECT_EQ(r.checksum, 0xABCD000Au);
  EXPECT_EQ(r.origin, Origin::kLocal);
  EXPECT_EQ(r.written_at_ms, 1700000001000);
  EXPECT_EQ(PendingSeqs(*j, "s3"), (std::vector<uint64_t>{1, 2, 3}));

  // A batch stops at max_records; through_seq covers only what it looked at.
  batch = j->ReadPending("s3", 2, 1 << 20);
  ASSERT_TRUE(batch.ok());
  EXPECT_EQ(batch->records.size(), 2u);
  EXPECT_EQ(batch->through_seq, 2u);

  clock_.Advance(seconds(4));
  CursorStats peer = StatsOf(*j, "peer");
  EXPECT_EQ(peer.chunks_behind, 2u);
  EXPECT_EQ(peer.bytes_behind, 15u);
  EXPECT_EQ(peer.oldest_unacked_ms, 1700000000000);
  EXPECT_EQ(peer.oldest_unacked_age, seconds(5));
  CursorStats s3 = StatsOf(*j, "s3");
  EXPECT_EQ(s3.chunks_behind, 3u);
  EXPECT_EQ(s3.bytes_behind, 35u);
  EXPECT_EQ(j->ReadPending("nope", 1, 1).status().code(), Code::kNotFound);
}

// The bytes of the latest appends come with their records, the oldest dropped when the memory
// is full; the rest are for the shipper to read back.
TEST_F(LogJournalTest, HoldsTheLatestChunksBytesUntilEveryCursorHasPassedThem) {
  options_.memory_bytes = 30;  // each record below holds a 7-byte key and 2 to 4 bytes
  auto j = Open();
  ASSERT_NE(j, nullptr);
  auto append = [&](const std::string& key, uint64_t offset, const std::string& data) {
    auto seq = j->Append(key, offset, data.size(), 7, Origin::kLocal, data);
    EXPECT_TRUE(seq.ok()) << seq.status().ToString();
  };
  append("d/a.log", 0, "aaaa");  // 1
  append("d/b.log", 0, "bbbb");  // 2
  append("d/a.log", 4, "cccc");  // 3: 33 bytes held, over 30: seq 1 is dropped
  EXPECT_EQ(j->memory_bytes_held(), 22u);
  auto held = [&](const std::string& cursor) {
    std::vector<std::string> out;  // "seq:data", "seq:-" for one to read back
    auto b = j->ReadPending(cursor, 100, 1 << 20);
    EXPECT_TRUE(b.ok()) << b.status().ToString();
    if (!b.ok()) return out;
    for (const JournalRecord& r : b->records) {
      out.push_back(std::to_string(r.seq) + ":" + r.data.value_or("-"));
    }
    return out;
  };
  EXPECT_EQ(held("peer"), (std::vector<std::string>{"1:-", "2:bbbb", "3:cccc"}));
  auto b = j->ReadPending("peer", 100, 1 << 20);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->records[2].key, "d/a.log");
  EXPECT_EQ(b->records[2].offset, 4u);
  EXPECT_EQ(b->records[2].length, 4u);
  EXPECT_EQ(b->records[2].checksum, 7u);

  // Held until every cursor has passed them.
  ASSERT_TRUE(j->Acknowledge("peer", 3).ok());
  EXPECT_EQ(j->memory_bytes_held(), 22u);
  ASSERT_TRUE(j->Acknowledge("s3", 2).ok());
  EXPECT_EQ(j->memory_bytes_held(), 11u);
  EXPECT_EQ(held("s3"), (std::vector<std::string>{"3:cccc"}));

  // An append without its bytes ends what is held (held records follow each other to the last).
  ASSERT_TRUE(j->Append("d/c.log", 0, 3, 7, Origin::kLocal).ok());  // 4
  EXPECT_EQ(j->memory_bytes_held(), 0u);
  append("d/c.log", 3, "dd");  // 5
  EXPECT_EQ(held("s3"), (std::vector<std::string>{"3:-", "4:-", "5:dd"}));

  // Nothing is held across a reopen.
  j.reset();
  j = Open();
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(j->memory_bytes_held(), 0u);
  EXPECT_EQ(held("s3"), (std::vector<std::string>{"3:-", "4:-", "5:-"}));
  append("d/c.log", 5, "ee");  // 6
  EXPECT_EQ(held("s3"), (std::vector<std::string>{"3:-", "4:-", "5:-", "6:ee"}));
}

TEST_F(LogJournalTest, AcknowledgingMovesTheCursor) {
  auto j = Open();
  ASSERT_NE(j, nullptr);
  Append(*j, "d/a.log", 0, 10);
  clock_.Advance(seconds(2));
  Append(*j, "d/b.log", 0, 20, Origin::kReplicated);
  Append(*j, "d/a.log", 10, 5);

  ASSERT_TRUE(j->Acknowledge("s3", 2).ok());
  CursorStats s3 = StatsOf(*j, "s3");
  EXPECT_EQ(s3.acked_seq, 2u);
  EXPECT_EQ(s3.chunks_behind, 1u);
  EXPECT_EQ(s3.bytes_behind, 5u);
  EXPECT_EQ(s3.oldest_unacked_ms, 1700000002000);
  EXPECT_EQ(PendingSeqs(*j, "s3"), (std::vector<uint64_t>{3}));
  // Older acknowledgements are ignored; one past the last record is refused.
  EXPECT_TRUE(j->Acknowledge("s3", 1).ok());
  EXPECT_EQ(StatsOf(*j, "s3").acked_seq, 2u);
  EXPECT_EQ(j->Acknowledge("s3", 4).code(), Code::kInvalidArgument);
  EXPECT_EQ(j->Acknowledge("nope", 1).code(), Code::kNotFound);

  ASSERT_TRUE(j->Acknowledge("peer", 3).ok());
  CursorStats peer = StatsOf(*j, "peer");
  EXPECT_EQ(peer.chunks_behind, 0u);
  EXPECT_EQ(peer.bytes_behind, 0u);
  EXPECT_FALSE(peer.oldest_unacked_ms.has_value());
  EXPECT_EQ(peer.oldest_unacked_age, Duration::zero());
  EXPECT_TRUE(PendingSeqs(*j, "peer").empty());
  // Only replicated records follow: nothing is pending for the local-only cursor.
  Append(*j, "d/b.log", 20, 1, Origin::kReplicated);
  EXPECT_EQ(StatsOf(*j, "peer").chunks_behind, 0u);
  EXPECT_EQ(StatsOf(*j, "s3").chunks_behind, 2u);
}

TEST_F(LogJournalTest, ReopeningKeepsRecordsAndCursors) {
  {
    auto j = Open();
    ASSERT_NE(j, nullptr);
    Append(*j, "d/a.log", 0, 10);
    Append(*j, "d/b.log", 0, 20, Origin::kReplicated);
    Append(*j, "d/a.log", 10, 5);
    ASSERT_TRUE(j->Acknowledge("s3", 2).ok());
  }
  auto j = Open();
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(j->last_seq(), 3u);
  EXPECT_EQ(StatsOf(*j, "s3").acked_seq, 2u);
  EXPECT_EQ(PendingSeqs(*j, "s3"), (std::vector<uint64_t>{3}));
  EXPECT_EQ(PendingSeqs(*j, "peer"), (std::vector<uint64_t>{1, 3}));
  EXPECT_EQ(StatsOf(*j, "peer").bytes_behind, 15u);
  EXPECT_EQ(Append(*j, "d/c.log", 0, 1), 4u);
}

TEST_F(LogJournalTest, ATornLastRecordIsCutOffOnReopen) {
  {
    auto j = Open();
    ASSERT_NE(j, nullptr);
    Append(*j, "d/a.log", 0, 10);
    Append(*j, "d/a.log", 10, 10);
  }
  std::vector<std::string> segments = Segments();
  ASSERT_EQ(segments.size(), 1u);
  auto size = std::filesystem::file_size(segments[0]);
  // A crash in the middle of writing the second record.
  ASSERT_EQ(truncate(segments[0].c_str(), static_cast<off_t>(size - 3)), 0);
  {
    auto j = Open();
    ASSERT_NE(j, nullptr);
    EXPECT_EQ(j->last_seq(), 1u);
    EXPECT_EQ(StatsOf(*j, "peer").chunks_behind, 1u);
    EXPECT_EQ(Append(*j, "d/b.log", 0, 7), 2u);
  }
  // Garbage after the last whole record (a crash that wrote a header only) is cut off too.
  {
    const std::string garbage("\x30\x00\x00\x00\x01\x02", 6);
    FILE* f = fopen(segments[0].c_str(), "ab");
    ASSERT_NE(f, nullptr);
    fwrite(garbage.data(), 1, garbage.size(), f);
    fclose(f);
  }
  auto j = Open();
  ASSERT_NE(j, nullptr);
  auto batch = j->ReadPending("peer", 10, 1 << 20);
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  ASSERT_EQ(batch->records.size(), 2u);
  EXPECT_EQ(batch->records[1].key, "d/b.log");
  EXPECT_EQ(batch->records[1].length, 7u);
  EXPECT_EQ(Append(*j, "d/c.log", 0, 1), 3u);
}

TEST_F(LogJournalTest, ADamagedEarlierSegmentIsAnError) {
  options_.segment_bytes = 100;
  {
    auto j = Open();
    ASSERT_NE(j, nullptr);
    for (int i = 0; i < 6; ++i) Append(*j, "d/a.log", static_cast<uint64_t>(i) * 10, 10);
  }
  std::vector<std::string> segments = Segments();
  ASSERT_GE(segments.size(), 3u);
  auto data = ReadFile(segments[0]);
  ASSERT_TRUE(data.ok());
  std::string damaged = *data;
  damaged[20] = static_cast<char>(damaged[20] ^ 0x40);
  ASSERT_TRUE(WriteFileAtomic(segments[0], damaged).ok());
  auto j = LogJournal::Open(path_, options_, clock_);
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.status().code(), Code::kInternal);
  EXPECT_NE(j.status().message().find("damaged"), std::string::npos) << j.status().message();
}

TEST_F(LogJournalTest, TrimsSegmentsEveryCursorHasPassed) {
  options_.segment_bytes = 200;
  auto j = Open();
  ASSERT_NE(j, nullptr);
  for (int i = 0; i < 20; ++i) Append(*j, "d/a.log", static_cast<uint64_t>(i) * 10, 10);
  size_t before = j->segment_count();
  ASSERT_GE(before, 5u);
  EXPECT_EQ(Segments().size(), before);

  ASSERT_TRUE(j->Acknowledge("peer", 20).ok());
  EXPECT_EQ(j->segment_count(), before);  // s3 still needs them all
  ASSERT_TRUE(j->Acknowledge("s3", 9).ok());
  size_t middle = j->segment_count();
  EXPECT_LT(middle, before);
  EXPECT_GT(middle, 1u);
  EXPECT_EQ(Segments().size(), middle);
  // Everything s3 still needs is readable.
  std::vector<uint64_t> want;
  for (uint64_t s = 10; s <= 20; ++s) want.push_back(s);
  EXPECT_EQ(PendingSeqs(*j, "s3"), want);

  ASSERT_TRUE(j->Acknowledge("s3", 20).ok());
  EXPECT_EQ(j->segment_count(), 1u);
  EXPECT_EQ(Segments().size(), 1u);
  j.reset();
  j = Open();
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(j->last_seq(), 20u);
  EXPECT_EQ(StatsOf(*j, "s3").chunks_behind, 0u);
  EXPECT_EQ(Append(*j, "d/a.log", 200, 10), 21u);
  EXPECT_EQ(PendingSeqs(*j, "s3"), (std::vector<uint64_t>{21}));
}

TEST_F(LogJournalTest, DiscardPendingCountsWhatItDropsAndPersistsAtOnce) {
  options_.cursor_sync_interval = std::chrono::hours(1);
  {
    auto j = Open();
    ASSERT_NE(j, nullptr);
    Append(*j, "d/a.log", 0, 10);
    Append(*j, "d/a.log", 10, 5);
    Append(*j, "d/b.log", 0, 7);
    Append(*j, "d/c.log", 0, 100, Origin::kReplicated);
    Append(*j, "d/b.log", 7, 3);
    ASSERT_TRUE(j->Acknowledge("peer", 1).ok());
    auto dropped = j->DiscardPending("peer");
    ASSERT_TRUE(dropped.ok()) << dropped.status().ToString();
    EXPECT_EQ(dropped->chunks, 3u);
    EXPECT_EQ(dropped->bytes, 15u);
    EXPECT_EQ(dropped->first_offset_by_key,
              (std::map<std::string, uint64_t>{{"d/a.log", 10}, {"d/b.log", 0}}));
    EXPECT_EQ(StatsOf(*j, "peer").chunks_behind, 0u);
    EXPECT_EQ(StatsOf(*j, "s3").chunks_behind, 5u);  // other cursors keep theirs
    // Nothing left: discarding again drops nothing.
    dropped = j->DiscardPending("peer");
    ASSERT_TRUE(dropped.ok());
    EXPECT_EQ(dropped->chunks, 0u);
    // Simulate a crash: the cursor file must already say so.
    auto text = ReadFile(path_ + "/cursor-peer");
    ASSERT_TRUE(text.ok());
    EXPECT_EQ(*text, "tandem-log-cursor 1\n5\n");
  }
  auto j = Open();
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(StatsOf(*j, "peer").chunks_behind, 0u);
  EXPECT_TRUE(PendingSeqs(*j, "peer").empty());
}

TEST_F(LogJournalTest, SeqsAcknowledgedButLostInACrashAreNotReused) {
  {
    auto j = Open();
    ASSERT_NE(j, nullptr);
    Append(*j, "d/a.log", 0, 10);
  }
  auto first_record = std::filesystem::file_size(Segments()[0]);
  {
    auto j = Open();
    ASSERT_NE(j, nullptr);
    Append(*j, "d/a.log", 10, 10);
    Append(*j, "d/a.log", 20, 10);
    ASSERT_TRUE(j->Acknowledge("s3", 3).ok());
    ASSERT_TRUE(j->FlushCursors().ok());
  }
  // A machine crash lost the unsynced records 2 and 3, but s3's cursor was written.
  ASSERT_EQ(truncate(Segments()[0].c_str(), static_cast<off_t>(first_record)), 0);
  auto j = Open();
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(j->last_seq(), 3u);
  EXPECT_EQ(PendingSeqs(*j, "peer"), (std::vector<uint64_t>{1}));
  EXPECT_EQ(StatsOf(*j, "peer").chunks_behind, 1u);
  EXPECT_EQ(Append(*j, "d/b.log", 0, 4), 4u);
  EXPECT_EQ(PendingSeqs(*j, "s3"), (std::vector<uint64_t>{4}));
  EXPECT_EQ(PendingSeqs(*j, "peer"), (std::vector<uint64_t>{1, 4}));
  j.reset();
  j = Open();  // the segment that starts after the lost seqs reopens too
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(PendingSeqs(*j, "peer"), (std::vector<uint64_t>{1, 4}));
  ASSERT_TRUE(j->Acknowledge("peer", 4).ok());
  EXPECT_EQ(StatsOf(*j, "peer").chunks_behind, 0u);
}

TEST_F(LogJournalTest, ANewCursorStartsAtTheOldestRetainedRecord) {
  options_.cursors = {{"s3", false}};
  {
    auto j = Open();
    ASSERT_NE(j, nullptr);
    Append(*j, "d/a.log", 0, 10);
    Append(*j, "d/a.log", 10, 10);
  }
  options_.cursors = {{"s3", false}, {"peer", true}};
  auto j = Open();
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(PendingSeqs(*j, "peer"), (std::vector<uint64_t>{1, 2}));
  EXPECT_TRUE(PathExists(path_ + "/cursor-peer"));
}

TEST_F(LogJournalTest, RefusesBadOptions) {
  options_.cursors = {{"Peer", false}};
  EXPECT_EQ(LogJournal::Open(path_, options_, clock_).status().code(), Code::kInvalidArgument);
  options_.cursors = {{"peer", false}, {"peer", true}};
  EXPECT_EQ(LogJournal::Open(path_, options_, clock_).status().code(), Code::kInvalidArgument);
  options_.cursors = {{"../x", false}};
  EXPECT_EQ(LogJournal::Open(path_, options_, clock_).status().code(), Code::kInvalidArgument);
  options_.cursors = {};
  options_.segment_bytes = 0;
  EXPECT_EQ(LogJournal::Open(path_, options_, clock_).status().code(), Code::kInvalidArgument);
}

TEST_F(LogJournalTest, ListenersHearEveryAppendUntilRemoved) {
  auto j = Open();
  ASSERT_NE(j, nullptr);
  int calls = 0;
  int id = j->AddListener([&] { ++calls; });
  Append(*j, "d/a.log", 0, 1);
  Append(*j, "d/a.log", 1, 1);
  EXPECT_EQ(calls, 2);
  j->RemoveListener(id);
  Append(*j, "d/a.log", 2, 1);
  EXPECT_EQ(calls, 2);
}

TEST_F(LogJournalTest, WithoutCursorsEverySealedSegmentIsTrimmed) {
  options_.cursors = {};
  options_.segment_bytes = 100;
  auto j = Open();
  ASSERT_NE(j, nullptr);
  for (int i = 0; i < 10; ++i) Append(*j, "d/a.log", static_cast<uint64_t>(i), 1);
  EXPECT_GT(j->segment_count(), 1u);
  ASSERT_TRUE(j->Trim().ok());
  EXPECT_EQ(j->segment_count(), 1u);
  EXPECT_TRUE(j->Sync().ok());
}

TEST_F(LogJournalTest, ItsOwnThreadSyncsWhatWasAppended) {
  options_.sync_interval = milliseconds(10);
  auto j = Open();
  ASSERT_NE(j, nullptr);
  uint64_t seq = Append(*j, "d/a.log", 0, 5);
  // Appends do not wait for the disk: the journal's thread syncs within its interval.
  const auto deadline = std::chrono::steady_clock::now() + seconds(10);
  while (j->synced_seq() < seq && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  EXPECT_EQ(j->synced_seq(), seq);
}

TEST_F(LogJournalTest, AZeroSyncIntervalSyncsEveryAppendBeforeItReturns) {
  options_.sync_interval = Duration::zero();
  auto j = Open();
  ASSERT_NE(j, nullptr);
  for (uint64_t i = 0; i < 3; ++i) {
    uint64_t seq = Append(*j, "d/a.log", i, 1);
    EXPECT_EQ(j->synced_seq(), seq);
  }
}

TEST_F(LogJournalTest, SyncsFromManyThreadsCoverEveryAppend) {
  options_.sync_interval = std::chrono::hours(1);  // only the callers sync
  auto j = Open();
  ASSERT_NE(j, nullptr);
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&j, t] {
      for (uint64_t i = 0; i < 50; ++i) {
        auto seq = j->Append("d/" + std::to_string(t) + ".log", i, 1, 0, Origin::kLocal);
        ASSERT_TRUE(seq.ok());
        ASSERT_TRUE(j->Sync().ok());
        EXPECT_GE(j->synced_seq(), *seq);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(j->synced_seq(), j->last_seq());
  EXPECT_EQ(j->last_seq(), 200u);
}

}  // namespace
}  // namespace tandem::replication
