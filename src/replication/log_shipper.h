// The sending side of log replication: one LogShipper per journal cursor (one per sink) reads
// the records its sink has not acknowledged, reads their bytes back from the local store,
// checks them against the checksums journaled at append time, and sends them to a ChunkSink.
//
// Protocol. A round reads a batch of pending records, merges the records of one object that
// follow each other into one chunk, and sends the chunks. The cursor advances to just before the
// oldest record whose chunk the sink did not confirm, never further, so a chunk applied halfway
// or an answer lost on the way is sent again (the receiver's ApplyChunk makes that harmless). A
// gap answer ("I hold S bytes") makes the shipper read [S, offset) from its own store and send
// it first. A conflict (the copies diverged) is counted, reported and passed over: it cannot be
// settled by sending again. A record whose bytes are gone from the local store or no longer
// match their checksum is counted, reported and passed over too, never sent. Failures back off
// exponentially up to a cap; new appends wake an idle shipper, which waits out batch_interval
// from the start of its previous round first, so that appends arriving together go together.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "logs/log_store.h"
#include "replication/apply_chunk.h"
#include "replication/chunk.h"
#include "replication/log_journal.h"

namespace tandem::replication {

// Where a shipper sends chunks: the peer region over HTTP (written by the region), an object
// store, a local store in tests.
class ChunkSink {
 public:
  virtual ~ChunkSink() = default;
  // Applies `chunks` in order and answers one ApplyResult per chunk attempted, in order; fewer
  // results than chunks means the rest were not attempted. A non-OK Result means nothing is
  // known about any of them (the request failed on the way).
  virtual Result<std::vector<ApplyResult>> Apply(const std::vector<Chunk>& chunks) = 0;
};
using ChunkSinkPtr = std::unique_ptr<ChunkSink>;

// Applies chunks to a LogStore with ApplyChunk (the object store's sink; the receiving end of
// the peer's HTTP endpoint does the same). Applies one batch at a time. `store` must outlive it.
class StoreSink final : public ChunkSink {
 public:
  explicit StoreSink(logs::LogStore& store) : store_(store) {}
  Result<std::vector<ApplyResult>> Apply(const std::vector<Chunk>& chunks) override;

 private:
  logs::LogStore& store_;
  std::mutex mu_;  // one batch at a time: ApplyChunk needs one writer per key
};

// Replication lag (time from append to acknowledgement) in buckets about 10 % wide, from 1 ms
// to about an hour. Thread-safe.
class LagHistogram {
 public:
  LagHistogram();
  void Record(Duration lag);
  // The upper bound of the bucket holding quantile `q` (0..1); zero when empty.
  Duration Quantile(double q) const;
  // Samples of at most `bound`, counting a bucket only when all of it lies within the bound
  // (so the figure never flatters: a sample just under the bound may be left out).
  uint64_t CountAtMost(Duration bound) const;
  uint64_t count() const;
  Duration max() const;
  void Reset();

 private:
  size_t BucketOf(int64_t ms) const;
  mutable std::mutex mu_;
  std::vector<uint64_t> buckets_;   // guarded by mu_
  std::vector<int64_t> bounds_ms_;  // upper bounds; constant after construction
  uint64_t count_ = 0;              // guarded by mu_
  int64_t max_ms_ = 0;              // guarded by mu_
};

struct ShipperOptions {
  size_t max_batch_records = 4096;
  uint64_t max_batch_bytes = uint64_t{4} << 20;
  Duration initial_backoff = std::chrono::milliseconds(100);
  Duration max_backoff = std::chrono::seconds(10);
  // How long an idle shipper waits for an append before it looks anyway.
  Duration idle_poll = std::chrono::seconds(1);
  // The least time from the start of a round that sent something and left the sink caught up to
  // the start of the next: what is appended meanwhile goes in one batch (fewer, larger requests,
  // for at most this much more lag). A round that leaves more behind is followed at once, and
  // the first append after an idle round goes at once. Zero: no wait.
  Duration batch_interval = Duration::zero();
  bool start_paused = false;
};

struct ShipperStats {
  std::string cursor;
  bool running = false;
  bool paused = false;
  // From the journal: what the sink has not acknowledged.
  uint64_t chunks_behind = 0;
  uint64_t bytes_behind = 0;
  Duration oldest_unacked_age{0};
  // Since this shipper was created.
  uint64_t records_shipped = 0;
  uint64_t bytes_shipped = 0;
  uint64_t batches_sent = 0;  // requests to the sink, gap fills included, answered or not
  uint64_t chunks_sent = 0;   // chunks in them (records of one object that follow merge)
  uint64_t gaps_filled = 0;
  uint64_t records_unreadable = 0;  // bytes gone from the local store: not sent
  uint64_t records_corrupt = 0;     // bytes no longer matching their checksum: not sent
  uint64_t conflicts = 0;           // chunks the sink holds different bytes for: passed over
  uint64_t consecutive_failures = 0;
  std::string last_error;  // the latest problem, kept after later successes
  std::optional<WallTime> last_error_at;
  std::optional<WallTime> last_success_at;
  // Append-to-acknowledgement lag of the records acknowledged so far.
  uint64_t lag_samples = 0;
  Duration lag_p50{0};
  Duration lag_p99{0};
  Duration lag_max{0};
};

// Ships one cursor of `journal` to `sink`, reading bytes from `source` (the region's inner log
// store). `journal`, `source` and `clock` must outlive it. Lifecycle: construct, Start() (or
// drive RunOnce() by hand in tests), Pause()/Resume() as the region's role changes, destroy
// (which stops the thread). Thread-safe.
class LogShipper {
 public:
  LogShipper(LogJournal& journal, logs::LogStore& source, ChunkSinkPtr sink, std::string cursor,
             ShipperOptions options, Clock& clock);
  ~LogShipper();
  LogShipper(const LogShipper&) = delete;
  LogShipper& operator=(const LogShipper&) = delete;

  // Starts the shipping thread. REQUIRES: not started.
  void Start();
  // Stops and joins the thread; a round in flight finishes first.
  void Stop();
  // A paused shipper sends nothing (a standby region does not ship); Resume starts at once.
  void Pause();
  void Resume();
  // Wakes an idle thread (the journal's listener calls this on every append).
  void Wake();
  // Wakes the thread and cuts a batch interval short: for a flush that is being waited for (a
  // planned failover's drain).
  void Hurry();

  struct Round {
    uint64_t records_acked = 0;  // records the cursor moved past
    bool more = false;           // work is left: run again without waiting
  };
  // One round: a gap fill or one batch. An error means the sink failed or refused something
  // and the round should be retried after a backoff. Nothing happens while paused.
  Result<Round> RunOnce();

  // Drops what is pending for this cursor (see LogJournal::DiscardPending) and any gap fill.
  Result<DiscardResult> DiscardPending();

  ShipperStats stats() const;
  const LagHistogram& lag() const { return lag_; }
  // When the thread will try again after a failure (by the injected clock), if it is backing
  // off.
  std::optional<MonoTime> retry_at() const;

 private:
  // A range the receiver lacks, to be sent from `source_` before the journal's records.
  struct Fill {
    uint64_t from = 0;
    uint64_t to = 0;
  };
  // One chunk being sent, and the records it carries.
  struct Outgoing {
    Chunk chunk;
    uint64_t first_seq = 0;
    std::vector<std::pair<uint64_t, int64_t>> records;  // seq, written-at ms
  };

  void Loop();
  // Waits a slice of the time left until `until` (the clock may be simulated: at most
  // kMaxRealWait of real time at once), waking early on Stop, Pause or `until` being cleared;
  // false, at once, when `until` is unset or has passed. REQUIRES: `lock` holds mu_.
  bool WaitOut(std::unique_lock<std::mutex>& lock, const std::optional<MonoTime>& until);
  Result<Round> FillGap();    // REQUIRES: run_mu_ held
  Result<Round> ShipBatch();  // REQUIRES: run_mu_ held
  // A record passed over because its local bytes are gone or changed.
  struct Skipped {
    uint64_t seq = 0;
    bool gone = false;
    std::string message;
  };
  Status BuildChunks(const PendingBatch& batch, std::vector<Outgoing>* out,
                     std::vector<Skipped>* skipped);
  void NoteError(const std::string& message);
  void CountSent(size_t chunks);
  Result<std::string> ReadLocal(const std::string& key, uint64_t offset, uint64_t length);

  // Constant after construction.
  LogJournal& journal_;
  logs::LogStore& source_;
  const ChunkSinkPtr sink_;
  const std::string cursor_;
  const ShipperOptions options_;
  Clock& clock_;
  int listener_id_ = 0;

  LagHistogram lag_;

  std::mutex run_mu_;                  // one round at a time
  std::map<std::string, Fill> fills_;  // guarded by run_mu_

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;                 // guarded by mu_
  bool paused_ = false;               // guarded by mu_
  bool woken_ = false;                // guarded by mu_
  bool idle_ = false;                 // guarded by mu_; waiting for an append
  bool running_ = false;              // guarded by mu_
  std::optional<MonoTime> retry_at_;  // guarded by mu_
  std::optional<MonoTime> next_round_;  // guarded by mu_; see ShipperOptions::batch_interval
  Backoff backoff_;                   // guarded by mu_
  ShipperStats counters_;             // guarded by mu_ (the journal's and lag fields unused)
  std::thread thread_;
};
using LogShipperPtr = std::unique_ptr<LogShipper>;

}  // namespace tandem::replication
