#include "replication/log_shipper.h"

#include <pthread.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_map>
#include <utility>

namespace tandem::replication {
namespace {

// The injected clock may be a simulated one: a backing-off thread looks at it again at least
// this often in real time.
constexpr Duration kMaxRealWait = std::chrono::milliseconds(50);

int64_t WallMs(const Clock& clock) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock.Wall().time_since_epoch())
      .count();
}

std::string RangeText(uint64_t from, uint64_t to) {
  return "[" + std::to_string(from) + ", " + std::to_string(to) + ")";
}

}  // namespace

Result<std::vector<ApplyResult>> StoreSink::Apply(const std::vector<Chunk>& chunks) {
  std::lock_guard lock(mu_);
  std::vector<ApplyResult> results;
  results.reserve(chunks.size());
  for (const Chunk& c : chunks) results.push_back(ApplyChunk(store_, c));
  return results;
}

LagHistogram::LagHistogram() {
  double bound = 1;
  while (bound < 3.6e6) {
    auto b = static_cast<int64_t>(std::ceil(bound));
    if (bounds_ms_.empty() || b > bounds_ms_.back()) bounds_ms_.push_back(b);
    bound *= 1.1;
  }
  bounds_ms_.push_back(std::numeric_limits<int64_t>::max());
  buckets_.assign(bounds_ms_.size(), 0);
}

size_t LagHistogram::BucketOf(int64_t ms) const {
  return static_cast<size_t>(std::lower_bound(bounds_ms_.begin(), bounds_ms_.end(), ms) -
                             bounds_ms_.begin());
}

void LagHistogram::Record(Duration lag) {
  int64_t ms =
      std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(lag).count());
  size_t b = BucketOf(ms);
  std::lock_guard lock(mu_);
  ++buckets_[b];
  ++count_;
  max_ms_ = std::max(max_ms_, ms);
}

Duration LagHistogram::Quantile(double q) const {
  std::lock_guard lock(mu_);
  if (count_ == 0) return Duration::zero();
  auto rank =
      static_cast<uint64_t>(std::ceil(std::clamp(q, 0.0, 1.0) * static_cast<double>(count_)));
  rank = std::max<uint64_t>(rank, 1);
  uint64_t seen = 0;
  for (size_t i = 0; i < buckets_.size(); ++i) {
    seen += buckets_[i];
    if (seen >= rank) return std::chrono::milliseconds(std::min(bounds_ms_[i], max_ms_));
  }
  return std::chrono::milliseconds(max_ms_);
}

uint64_t LagHistogram::CountAtMost(Duration bound) const {
  const int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(bound).count();
  std::lock_guard lock(mu_);
  uint64_t n = 0;
  for (size_t i = 0; i < buckets_.size() && bounds_ms_[i] <= ms; ++i) n += buckets_[i];
  return n;
}

uint64_t LagHistogram::count() const {
  std::lock_guard lock(mu_);
  return count_;
}

Duration LagHistogram::max() const {
  std::lock_guard lock(mu_);
  return std::chrono::milliseconds(max_ms_);
}

void LagHistogram::Reset() {
  std::lock_guard lock(mu_);
  std::fill(buckets_.begin(), buckets_.end(), 0);
  count_ = 0;
  max_ms_ = 0;
}

LogShipper::LogShipper(LogJournal& journal, logs::LogStore& source, ChunkSinkPtr sink,
                       std::string cursor, ShipperOptions options, Clock& clock)
    : journal_(journal),
      source_(source),
      sink_(std::move(sink)),
      cursor_(std::move(cursor)),
      options_(options),
      clock_(clock),
      paused_(options.start_paused),
      backoff_(options.initial_backoff, options.max_backoff) {
  counters_.cursor = cursor_;
  listener_id_ = journal_.AddListener([this] { Wake(); });
}

LogShipper::~LogShipper() {
  journal_.RemoveListener(listener_id_);
  Stop();
}

void LogShipper::Start() {
  std::lock_guard lock(mu_);
  stop_ = false;
  running_ = true;
  thread_ = std::thread([this] { Loop(); });
  // "ship-peer", "ship-s3": the thread's name in top -H and /proc/PID/task/TID/comm.
  pthread_setname_np(thread_.native_handle(), ("ship-" + cursor_).substr(0, 15).c_str());
}

void LogShipper::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  std::lock_guard lock(mu_);
  running_ = false;
}

void LogShipper::Pause() {
  std::lock_guard lock(mu_);
  paused_ = true;
  cv_.notify_all();
}

void LogShipper::Resume() {
  std::lock_guard lock(mu_);
  paused_ = false;
  retry_at_.reset();
  backoff_ = Backoff(options_.initial_backoff, options_.max_backoff);
  cv_.notify_all();
}

void LogShipper::Wake() {
  std::lock_guard lock(mu_);
  if (woken_) return;  // the thread has yet to see the last one
  woken_ = true;
  // Only a thread waiting for appends is woken: one waiting out a backoff or a batch interval
  // would only go back to sleep, a switch for every append.
  if (idle_) cv_.notify_all();
}

void LogShipper::Hurry() {
  std::lock_guard lock(mu_);
  woken_ = true;
  next_round_.reset();
  cv_.notify_all();
}

std::optional<MonoTime> LogShipper::retry_at() const {
  std::lock_guard lock(mu_);
  return retry_at_;
}

bool LogShipper::WaitOut(std::unique_lock<std::mutex>& lock, const std::optional<MonoTime>& until) {
  if (!until) return false;
  const MonoTime now = clock_.Now();
  if (now >= *until) return false;
  cv_.wait_for(lock, std::min<Duration>(*until - now, kMaxRealWait),
               [&] { return stop_ || paused_ || !until; });
  return true;
}

void LogShipper::Loop() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    if (paused_) {
      cv_.wait(lock, [&] { return stop_ || !paused_; });
      continue;
    }
    // Appends cut neither a backoff nor a batch interval short (they join the next batch);
    // Resume, Stop and Hurry do.
    if (WaitOut(lock, retry_at_) || WaitOut(lock, next_round_)) continue;
    next_round_.reset();
    woken_ = false;
    const MonoTime started = clock_.Now();
    lock.unlock();
    Result<Round> round = RunOnce();
    lock.lock();
    if (!round.ok() || round->more) continue;
    // After a round that sent something; appends after an idle spell go at once.
    if (options_.batch_interval > Duration::zero() && round->records_acked > 0) {
      next_round_ = started + options_.batch_interval;
    }
    idle_ = true;
    cv_.wait_for(lock, options_.idle_poll, [&] { return stop_ || paused_ || woken_; });
    idle_ = false;
  }
}

void LogShipper::CountSent(size_t chunks) {
  std::lock_guard lock(mu_);
  ++counters_.batches_sent;
  counters_.chunks_sent += chunks;
}

void LogShipper::NoteError(const std::string& message) {
  std::lock_guard lock(mu_);
  counters_.last_error = message;
  counters_.last_error_at = clock_.Wall();
}

Result<LogShipper::Round> LogShipper::RunOnce() {
  {
    std::lock_guard lock(mu_);
    if (paused_) return Round{};
  }
  std::lock_guard run(run_mu_);
  Result<Round> round = fills_.empty() ? ShipBatch() : FillGap();
  std::lock_guard lock(mu_);
  if (!round.ok()) {
    ++counters_.consecutive_failures;
    counters_.last_error = "log replication to " + cursor_ + ": " + round.status().ToString();
    counters_.last_error_at = clock_.Wall();
    retry_at_ = clock_.Now() + backoff_.Next();
  } else if (counters_.consecutive_failures > 0 || retry_at_) {
    counters_.consecutive_failures = 0;
    retry_at_.reset();
    backoff_ = Backoff(options_.initial_backoff, options_.max_backoff);
  }
  return round;
}

Result<std::string> LogShipper::ReadLocal(const std::string& key, uint64_t offset,
                                          uint64_t length) {
  std::string out;
  uint64_t at = offset;
  while (out.size() < length) {
    ASSIGN_OR_RETURN(logs::LogChunk c, source_.Read(key, at, length - out.size()));
    if (c.data.empty()) break;
    out.append(c.data);
    at = c.next_offset;
  }
  return out;
}

Status LogShipper::BuildChunks(const PendingBatch& batch, std::vector<Outgoing>* out,
                               std::vector<Skipped>* skipped) {
  // The records of each object, in seq order, objects in order of their first record.
  std::vector<std::string> keys;
  std::unordered_map<std::string, std::vector<const JournalRecord*>> by_key;
  for (const JournalRecord& r : batch.records) {
    auto [it, added] = by_key.try_emplace(r.key);
    if (added) keys.push_back(r.key);
    it->second.push_back(&r);
  }
  for (const std::string& key : keys) {
    const std::vector<const JournalRecord*>& records = by_key[key];
    size_t i = 0;
    while (i < records.size()) {
      // A run of records that follow each other in the object: one read.
      size_t j = i + 1;
      while (j < records.size() &&
             records[j]->offset == records[j - 1]->offset + records[j - 1]->length) {
        ++j;
      }
      uint64_t start = records[i]->offset;
      uint64_t length = records[j - 1]->offset + records[j - 1]->length - start;
      // The journal hands over the bytes it still held in memory; the rest is read back.
      const bool held = std::all_of(records.begin() + static_cast<std::ptrdiff_t>(i),
                                    records.begin() + static_cast<std::ptrdiff_t>(j),
                                    [](const JournalRecord* r) { return r->data.has_value(); });
      Result<std::string> data = held ? std::string() : ReadLocal(key, start, length);
      if (!data.ok() && data.status().code() != Code::kNotFound) return data.status();
      std::string_view bytes = data.ok() ? std::string_view(*data) : std::string_view();
      Outgoing* current = nullptr;
      for (size_t k = i; k < j; ++k) {
        const JournalRecord& r = *records[k];
        uint64_t at = r.offset - start;
        std::string_view slice = held                ? std::string_view(*r.data)
                                 : at < bytes.size() ? bytes.substr(at, r.length)
                                                     : "";
        bool gone = slice.size() < r.length;
        if (gone || Crc32c(slice) != r.checksum) {
          skipped->push_back(
              Skipped{r.seq, gone,
                      "log " + key + " bytes " + RangeText(r.offset, r.offset + r.length) +
                          (gone ? " are gone from the local store"
                                : " no longer match the checksum journaled when written") +
                          " (seq " + std::to_string(r.seq) + "): not replicated"});
          current = nullptr;
          continue;
        }
        if (current == nullptr) {
          out->push_back(Outgoing{});
          current = &out->back();
          current->chunk.key = key;
          current->chunk.offset = r.offset;
          current->first_seq = r.seq;
        }
        current->chunk.data.append(slice);
        current->first_seq = std::min(current->first_seq, r.seq);
        current->records.emplace_back(r.seq, r.written_at_ms);
      }
      i = j;
    }
  }
  for (Outgoing& o : *out) o.chunk.checksum = Crc32c(o.chunk.data);
  return Status::Ok();
}

Result<LogShipper::Round> LogShipper::ShipBatch() {
  ASSIGN_OR_RETURN(CursorStats before, journal_.Stats(cursor_));
  ASSIGN_OR_RETURN(PendingBatch batch, journal_.ReadPending(cursor_, options_.max_batch_records,
                                                            options_.max_batch_bytes));
  Round round;
  round.more = batch.through_seq < journal_.last_seq();
  std::vector<Outgoing> outgoing;
  std::vector<Skipped> skipped;
  RETURN_IF_ERROR(BuildChunks(batch, &outgoing, &skipped));

  uint64_t ack = batch.through_seq;
  Status failure;
  std::vector<size_t> conflicted;
  std::vector<bool> done(outgoing.size(), true);
  if (!outgoing.empty()) {
    std::vector<Chunk> chunks;
    chunks.reserve(outgoing.size());
    for (const Outgoing& o : outgoing) chunks.push_back(o.chunk);
    CountSent(chunks.size());
    ASSIGN_OR_RETURN(std::vector<ApplyResult> results, sink_->Apply(chunks));
    for (size_t i = 0; i < outgoing.size(); ++i) {
      const Chunk& c = outgoing[i].chunk;
      if (i < results.size() && results[i].status.ok()) continue;
      if (i < results.size() && results[i].conflict()) {
        conflicted.push_back(i);
        NoteError("log replication to " + cursor_ + ": " + results[i].status.message());
        continue;  // passed over: sending it again cannot settle it
      }
      done[i] = false;
      ack = std::min(ack, outgoing[i].first_seq - 1);
      if (i >= results.size()) {
        if (failure.ok()) failure = Unavailable("the sink did not apply every chunk");
      } else if (results[i].gap() && results[i].receiver_size < c.offset) {
        Fill& f = fills_[c.key];
        f.from = results[i].receiver_size;
        f.to = std::max(f.to, c.offset);
        round.more = true;
      } else if (failure.ok()) {
        failure = results[i].status.WithContext("chunk " + RangeText(c.offset, c.end()) +
                                                " of log " + c.key);
      }
    }
  }

  if (ack > before.acked_seq) {
    RETURN_IF_ERROR(journal_.Acknowledge(cursor_, ack));
    round.records_acked = ack - before.acked_seq;
  }
  int64_t now_ms = WallMs(clock_);
  uint64_t shipped = 0, bytes = 0;
  for (size_t i = 0; i < outgoing.size(); ++i) {
    if (!done[i]) continue;
    for (const auto& [seq, written_ms] : outgoing[i].records) {
      if (seq > ack) continue;
      ++shipped;
      lag_.Record(std::chrono::milliseconds(now_ms - written_ms));
    }
    bytes += outgoing[i].chunk.data.size();
  }
  {
    std::lock_guard lock(mu_);
    counters_.records_shipped += shipped;
    counters_.bytes_shipped += bytes;
    // Counted once: a chunk or record past `ack` is looked at again in a later round.
    for (size_t i : conflicted) {
      if (outgoing[i].first_seq <= ack) ++counters_.conflicts;
    }
    for (const Skipped& k : skipped) {
      if (k.seq > ack) continue;
      ++(k.gone ? counters_.records_unreadable : counters_.records_corrupt);
      counters_.last_error = "log replication to " + cursor_ + ": " + k.message;
      counters_.last_error_at = clock_.Wall();
    }
    if (round.records_acked > 0) counters_.last_success_at = clock_.Wall();
  }
  RETURN_IF_ERROR(failure);
  return round;
}

Result<LogShipper::Round> LogShipper::FillGap() {
  auto it = fills_.begin();
  const std::string key = it->first;
  Fill& fill = it->second;
  uint64_t length = std::min(fill.to - fill.from, options_.max_batch_bytes);
  Result<std::string> data = ReadLocal(key, fill.from, length);
  if (!data.ok() && data.status().code() != Code::kNotFound) return data.status();
  if (!data.ok() || data->empty()) {
    NoteError("log replication to " + cursor_ + ": cannot fill the receiver's gap " +
              RangeText(fill.from, fill.to) + " of log " + key +
              ": the bytes are gone from the local store");
    fills_.erase(it);
    return Round{0, true};
  }
  Chunk chunk = MakeChunk(key, fill.from, std::move(data).value());
  CountSent(1);
  ASSIGN_OR_RETURN(std::vector<ApplyResult> results, sink_->Apply({chunk}));
  if (results.empty()) return Unavailable("the sink did not apply the chunk");
  const ApplyResult& r = results[0];
  if (r.status.ok()) {
    fill.from = chunk.end();
    std::lock_guard lock(mu_);
    counters_.bytes_shipped += chunk.data.size();
    if (fill.from >= fill.to) {
      ++counters_.gaps_filled;
      fills_.erase(it);
    }
    return Round{0, true};
  }
  if (r.gap() && r.receiver_size < chunk.offset) {
    fill.from = r.receiver_size;
    return Round{0, true};
  }
  if (r.conflict()) {
    {
      std::lock_guard lock(mu_);
      ++counters_.conflicts;
    }
    NoteError("log replication to " + cursor_ + ": " + r.status.message());
    fills_.erase(it);
    return Round{0, true};
  }
  return r.status.WithContext("filling the gap " + RangeText(fill.from, fill.to) + " of log " +
                              key);
}

Result<DiscardResult> LogShipper::DiscardPending() {
  std::lock_guard run(run_mu_);
  fills_.clear();
  return journal_.DiscardPending(cursor_);
}

ShipperStats LogShipper::stats() const {
  ShipperStats s;
  {
    std::lock_guard lock(mu_);
    s = counters_;
    s.running = running_;
    s.paused = paused_;
  }
  if (auto j = journal_.Stats(cursor_); j.ok()) {
    s.chunks_behind = j->chunks_behind;
    s.bytes_behind = j->bytes_behind;
    s.oldest_unacked_age = j->oldest_unacked_age;
  }
  s.lag_samples = lag_.count();
  s.lag_p50 = lag_.Quantile(0.5);
  s.lag_p99 = lag_.Quantile(0.99);
  s.lag_max = lag_.max();
  return s;
}

}  // namespace tandem::replication
