// The log journal: a durable, append-only record of every chunk appended to a region's log
// store, and one cursor per replication sink saying how far that sink has acknowledged.
//
// On disk (one directory, see README.md):
//   segment-<first seq, 20 digits>.log   records, appended; a new segment every segment_bytes
//   cursor-<name>                        "tandem-log-cursor 1\n<acked seq>\n", replaced atomically
// A record is [u32 payload length][u32 CRC32C of payload][payload], little-endian, where the
// payload is: u8 format (1), u8 origin, u64 seq, u64 offset, u64 length, i64 written-at (wall
// ms), u32 chunk checksum, u16 key length, key bytes. Seqs grow by one per record.
//
// Durability (group commit): every append is written to the segment at once (a process crash
// loses nothing), and fsynced by the journal's own thread every sync_interval while something is
// unsynced, so no append or shipper waits for the disk. A machine crash may therefore lose the
// records of the last sync_interval (plus the time an fsync takes). With a zero sync_interval
// every append is fsynced before it returns (no thread). A torn last record is cut off on
// reopen. Cursors are written (outside the lock appends take) when cursor_sync_interval has
// passed, or by FlushCursors(); a lost cursor update only means chunks are sent again, which the
// receiver ignores. DiscardPending writes its cursor at once, because re-sending discarded
// chunks would not be harmless.
//
// Thread-safe. Listeners are called after every append, outside the journal's lock (mu_).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/status.h"

namespace tandem::replication {

// Where a chunk was written: by a task in this region, or received from the peer region.
enum class Origin : uint8_t { kLocal = 1, kReplicated = 2 };

std::string_view OriginName(Origin origin);

struct JournalRecord {
  uint64_t seq = 0;
  std::string key;
  uint64_t offset = 0;
  uint64_t length = 0;
  uint32_t checksum = 0;      // Crc32c of the chunk's bytes
  int64_t written_at_ms = 0;  // wall clock, Unix milliseconds
  Origin origin = Origin::kLocal;
  // The chunk's bytes, from ReadPending when the journal still held them in memory (see
  // JournalOptions::memory_bytes); otherwise they are read back from the log store.
  std::optional<std::string> data;
};

struct CursorOptions {
  std::string name;  // [a-z0-9_-], at most 64 characters: "peer", "s3"
  // Only records of local origin are pending for this cursor; the others are passed over. The
  // peer's cursor is local-only, so chunks received from the peer are never sent back to it.
  bool local_only = false;
};

struct JournalOptions {
  std::vector<CursorOptions> cursors;
  // Group commit: how often the journal's thread fsyncs what was appended (see above); zero
  // fsyncs every append before it returns.
  Duration sync_interval = std::chrono::milliseconds(100);
  Duration cursor_sync_interval = std::chrono::seconds(1);
  uint64_t segment_bytes = uint64_t{16} << 20;
  // Keeps the bytes of the latest appends in memory, up to this many (chunks and their keys
  // counted), until every cursor has passed them (the oldest go first when it is full), so that
  // a shipper keeping up sends them without reading them back from the log store. Zero keeps
  // none. Nothing of it is on disk: after a restart every pending chunk is read back.
  uint64_t memory_bytes = 0;
};

// What one sink has not acknowledged yet.
struct CursorStats {
  std::string name;
  bool local_only = false;
  uint64_t acked_seq = 0;
  uint64_t chunks_behind = 0;
  uint64_t bytes_behind = 0;
  // The written-at of the oldest unacknowledged chunk, and its age by the journal's clock; empty
  // and zero when nothing is behind.
  std::optional<int64_t> oldest_unacked_ms;
  Duration oldest_unacked_age{0};
};

// Records pending for a cursor. Acknowledging `through_seq` covers the records returned and the
// ones passed over (another origin).
struct PendingBatch {
  std::vector<JournalRecord> records;
  uint64_t through_seq = 0;
};

// What DiscardPending dropped.
struct DiscardResult {
  uint64_t chunks = 0;
  uint64_t bytes = 0;
  // For each object with dropped chunks, the offset where the first one started: the object
  // here holds bytes from that offset on that the peer never received.
  std::map<std::string, uint64_t> first_offset_by_key;
};

class LogJournal {
 public:
  // Opens (creating when absent) the journal in `dir`, recovering segments and cursors. A
  // cursor of `options` without a file starts at the oldest retained record; cursor files of
  // names not in `options` are ignored. `clock` must outlive the journal.
  static Result<std::unique_ptr<LogJournal>> Open(const std::string& dir, JournalOptions options,
                                                  Clock& clock);
  // Stops the sync thread, syncs the journal and writes the cursors (errors are dropped: call
  // Sync and FlushCursors first to see them).
  ~LogJournal();
  LogJournal(const LogJournal&) = delete;
  LogJournal& operator=(const LogJournal&) = delete;

  // Records a chunk of `length` bytes at `offset` of `key`; returns its seq. The record is
  // written before this returns and synced within the durability window (see above). An error
  // of the sync thread's last fsync is returned by the next append (its record is written).
  // `data`, the chunk's bytes, is kept in memory when it is `length` bytes long and
  // memory_bytes allows.
  Result<uint64_t> Append(std::string_view key, uint64_t offset, uint64_t length, uint32_t checksum,
                          Origin origin, std::string_view data = {});

  // fsyncs what has been appended. Callers that arrive while another fsync runs wait for it,
  // and return without an fsync of their own when it covered what they need.
  Status Sync();

  // Up to `max_records` records (and about `max_bytes` of chunk data, at least one record)
  // after the cursor's acknowledged seq that match its origin filter. NotFound for an unknown
  // cursor.
  Result<PendingBatch> ReadPending(std::string_view cursor, size_t max_records,
                                   uint64_t max_bytes) const;

  // The sink of `cursor` holds every chunk up to `through_seq`. An older seq than the cursor's
  // is ignored; one past the last record is InvalidArgument. Trims segments no cursor needs.
  Status Acknowledge(std::string_view cursor, uint64_t through_seq);

  // Moves `cursor` past every record pending for it and writes it at once; returns what was
  // dropped. Used when this region rejoins as a replica after a forced failover.
  Result<DiscardResult> DiscardPending(std::string_view cursor);

  Result<CursorStats> Stats(std::string_view cursor) const;
  std::vector<CursorStats> AllStats() const;

  // Writes every cursor whose file is behind.
  Status FlushCursors();
  // Removes the segments whose records no cursor still needs (never the one being appended to).
  Status Trim();

  // Calls `fn` after every append; returns an id for RemoveListener. `fn` must not call back
  // into the journal's Append.
  int AddListener(std::function<void()> fn);
  void RemoveListener(int id);

  // Whether any cursor takes records of `origin`: a record no cursor would send need not be
  // journaled (a standby without an object store journals nothing it receives).
  bool Wants(Origin origin) const;

  // The bytes held in memory, chunks and their keys (JournalOptions::memory_bytes).
  uint64_t memory_bytes_held() const;

  uint64_t last_seq() const;
  // The last seq known to be on disk (fsynced).
  uint64_t synced_seq() const;
  size_t segment_count() const;
  const std::string& dir() const { return dir_; }

 private:
  struct Segment;
  struct IndexEntry {
    int64_t written_at_ms = 0;
    uint64_t length = 0;
    uint32_t file_offset = 0;
    uint8_t origin = 0;  // 0: a seq lost in a crash (no record), else an Origin
  };
  struct Cursor {
    CursorOptions options;
    uint64_t acked = 0;      // in memory
    uint64_t persisted = 0;  // in the cursor file
    MonoTime persisted_at{};
    uint64_t pending_chunks = 0;
    uint64_t pending_bytes = 0;
    uint64_t first_pending = 0;  // seq of the oldest pending record; 0 when none
  };

  LogJournal(std::string dir, JournalOptions options, Clock& clock);

  Status Recover();
  void SyncLoop();  // the sync thread
  Status RecoverSegment(const std::string& name, uint64_t first_seq, bool last);
  Status OpenNewSegment(uint64_t first_seq);
  static bool Matches(const Cursor& c, uint8_t origin);
  const IndexEntry* Entry(uint64_t seq) const;         // REQUIRES: mu_ held
  void RecountCursor(Cursor& c);                       // REQUIRES: mu_ held
  void AdvanceFirstPending(Cursor& c, uint64_t from);  // REQUIRES: mu_ held
  Status PersistCursor(Cursor& c);  // REQUIRES: cursor_files_mu_ (after start) and mu_ held
  // Writes the cursor's file with its acknowledged seq, outside mu_. REQUIRES: neither lock held.
  Status WriteCursorFile(const std::string& name);
  Status TrimLocked();                                 // REQUIRES: mu_ held
  void ForgetBelow(uint64_t seq);  // drops held bytes of older seqs; REQUIRES: mu_ held
  CursorStats StatsLocked(const Cursor& c) const;      // REQUIRES: mu_ held
  Cursor* FindCursor(std::string_view name);
  const Cursor* FindCursor(std::string_view name) const;
  // Where the records with these seqs (in order) lie: a byte range of a segment, held open by
  // the plan, and the seqs in it.
  struct ReadPlan {
    std::shared_ptr<Segment> seg;
    uint64_t from = 0, to = 0;
    std::vector<uint64_t> seqs;
  };
  Status PlanReads(const std::vector<uint64_t>& seqs,
                   std::vector<ReadPlan>* plans) const;  // REQUIRES: mu_ held
  // Reads planned records; needs no lock (the bytes of planned records never change).
  static Status ExecuteReads(const std::vector<ReadPlan>& plans, std::vector<JournalRecord>* out);
  // Both, under mu_. REQUIRES: mu_ held
  Status ReadRecords(const std::vector<uint64_t>& seqs, std::vector<JournalRecord>* out) const;

  // Constant after construction.
  const std::string dir_;
  const JournalOptions options_;
  Clock& clock_;

  mutable std::mutex mu_;
  // Guarded by mu_:
  std::vector<std::shared_ptr<Segment>> segments_;  // by first seq; the last is appended to
  std::deque<IndexEntry> index_;  // one per seq from index_first_seq_ to last_seq_
  uint64_t index_first_seq_ = 1;
  uint64_t last_seq_ = 0;
  uint64_t synced_seq_ = 0;
  std::vector<Cursor> cursors_;
  // The bytes of seqs held_first_seq_ .. last_seq_ (see JournalOptions::memory_bytes).
  struct Held {
    std::string key;
    uint64_t offset = 0;
    uint32_t checksum = 0;
    std::string data;
  };
  std::deque<Held> held_;
  uint64_t held_first_seq_ = 1;
  uint64_t held_bytes_ = 0;
  Status sync_error_;    // the sync thread's last failure, for the next Append
  bool closing_ = false;  // the sync thread stops
  std::condition_variable sync_cv_;  // wakes the sync thread on closing
  std::thread syncer_;

  std::mutex sync_mu_;  // serialises fsync calls; taken before mu_ when both are held
  // Serialises writing cursor files (so an older value never overwrites a newer one); taken
  // before mu_ when both are held.
  std::mutex cursor_files_mu_;

  // Held while listeners run, so RemoveListener waits for a call in flight.
  std::mutex listeners_mu_;
  std::map<int, std::function<void()>> listeners_;  // guarded by listeners_mu_
  int next_listener_ = 1;                           // guarded by listeners_mu_
};
using LogJournalPtr = std::unique_ptr<LogJournal>;

}  // namespace tandem::replication
