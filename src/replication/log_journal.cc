#include "replication/log_journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <utility>

#include "base/fs.h"
#include "replication/chunk.h"

namespace tandem::replication {
namespace {

constexpr uint8_t kFormat = 1;
constexpr size_t kHeaderBytes = 8;  // payload length, payload CRC32C
// format, origin, seq, offset, length, written-at, checksum, key length
constexpr size_t kFixedPayloadBytes = 1 + 1 + 8 + 8 + 8 + 8 + 4 + 2;
constexpr size_t kMaxKeyBytes = 4096;
constexpr uint64_t kMaxSegmentBytes = uint64_t{1} << 30;  // file offsets are 32-bit
// Seqs lost in a crash are kept as empty index entries; more than this means a damaged cursor.
constexpr uint64_t kMaxSeqGap = uint64_t{1} << 24;
constexpr std::string_view kSegmentPrefix = "segment-";
constexpr std::string_view kSegmentSuffix = ".log";
constexpr std::string_view kCursorPrefix = "cursor-";
constexpr std::string_view kCursorMagic = "tandem-log-cursor 1\n";

void PutU16(std::string* s, uint16_t v) {
  for (int i = 0; i < 2; ++i) s->push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void PutU32(std::string* s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s->push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void PutU64(std::string* s, uint64_t v) {
  for (int i = 0; i < 8; ++i) s->push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
uint64_t GetLe(std::string_view s, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) {
    v = (v << 8) | static_cast<unsigned char>(s[at + static_cast<size_t>(i)]);
  }
  return v;
}

std::string EncodeRecord(const JournalRecord& r) {
  std::string payload;
  payload.reserve(kFixedPayloadBytes + r.key.size());
  payload.push_back(static_cast<char>(kFormat));
  payload.push_back(static_cast<char>(r.origin));
  PutU64(&payload, r.seq);
  PutU64(&payload, r.offset);
  PutU64(&payload, r.length);
  PutU64(&payload, static_cast<uint64_t>(r.written_at_ms));
  PutU32(&payload, r.checksum);
  PutU16(&payload, static_cast<uint16_t>(r.key.size()));
  payload.append(r.key);
  std::string out;
  out.reserve(kHeaderBytes + payload.size());
  PutU32(&out, static_cast<uint32_t>(payload.size()));
  PutU32(&out, Crc32c(payload));
  out.append(payload);
  return out;
}

// Decodes the record at the start of `buf`; false when it is incomplete or damaged.
bool DecodeRecord(std::string_view buf, JournalRecord* r, size_t* consumed) {
  if (buf.size() < kHeaderBytes) return false;
  uint64_t len = GetLe(buf, 0, 4);
  if (len < kFixedPayloadBytes || len > kFixedPayloadBytes + kMaxKeyBytes) return false;
  if (buf.size() - kHeaderBytes < len) return false;
  std::string_view p = buf.substr(kHeaderBytes, len);
  if (Crc32c(p) != GetLe(buf, 4, 4)) return false;
  if (static_cast<uint8_t>(p[0]) != kFormat) return false;
  auto origin = static_cast<uint8_t>(p[1]);
  if (origin != static_cast<uint8_t>(Origin::kLocal) &&
      origin != static_cast<uint8_t>(Origin::kReplicated)) {
    return false;
  }
  size_t key_len = GetLe(p, 38, 2);
  if (kFixedPayloadBytes + key_len != len) return false;
  r->origin = static_cast<Origin>(origin);
  r->seq = GetLe(p, 2, 8);
  r->offset = GetLe(p, 10, 8);
  r->length = GetLe(p, 18, 8);
  r->written_at_ms = static_cast<int64_t>(GetLe(p, 26, 8));
  r->checksum = static_cast<uint32_t>(GetLe(p, 34, 4));
  r->key = std::string(p.substr(kFixedPayloadBytes, key_len));
  *consumed = kHeaderBytes + len;
  return true;
}

std::string SegmentName(uint64_t first_seq) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%020" PRIu64, first_seq);
  return std::string(kSegmentPrefix) + buf + std::string(kSegmentSuffix);
}

// The first seq named by a segment file name, or nothing when `name` is not a segment's.
std::optional<uint64_t> ParseSegmentName(std::string_view name) {
  if (name.size() != kSegmentPrefix.size() + 20 + kSegmentSuffix.size() ||
      name.substr(0, kSegmentPrefix.size()) != kSegmentPrefix ||
      name.substr(name.size() - kSegmentSuffix.size()) != kSegmentSuffix) {
    return std::nullopt;
  }
  uint64_t v = 0;
  for (char c : name.substr(kSegmentPrefix.size(), 20)) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

Status CheckCursorName(std::string_view name) {
  bool ok = !name.empty() && name.size() <= 64;
  for (char c : name) {
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-');
  }
  if (ok) return Status::Ok();
  return InvalidArgument("log replication cursor name \"" + std::string(name) +
                         "\" must be 1 to 64 of a-z, 0-9, '_', '-'");
}

Status Errno(int err, const std::string& what) {
  std::string msg = what + ": " + strerror(err);
  if (err == ENOSPC) return Internal(msg + " (the disk is full)");
  return Internal(msg);
}

void SyncDir(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  fsync(fd);
  close(fd);
}

int64_t WallMs(const Clock& clock) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock.Wall().time_since_epoch())
      .count();
}

}  // namespace

std::string_view OriginName(Origin origin) {
  return origin == Origin::kLocal ? "local" : "replicated";
}

struct LogJournal::Segment {
  Segment(uint64_t first, std::string p, int descriptor)
      : first_seq(first), path(std::move(p)), fd(descriptor) {}
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;
  ~Segment() {
    if (fd >= 0) close(fd);
  }
  const uint64_t first_seq;
  const std::string path;
  const int fd;
  uint64_t size = 0;  // bytes of whole records; guarded by the journal's mu_
};

LogJournal::LogJournal(std::string dir, JournalOptions options, Clock& clock)
    : dir_(std::move(dir)), options_(std::move(options)), clock_(clock) {}

Result<std::unique_ptr<LogJournal>> LogJournal::Open(const std::string& dir, JournalOptions options,
                                                     Clock& clock) {
  if (dir.empty()) return InvalidArgument("the log journal directory is empty");
  if (options.segment_bytes == 0 || options.segment_bytes > kMaxSegmentBytes) {
    return InvalidArgument("log journal segments must be 1 byte to 1 GiB, not " +
                           std::to_string(options.segment_bytes));
  }
  for (size_t i = 0; i < options.cursors.size(); ++i) {
    RETURN_IF_ERROR(CheckCursorName(options.cursors[i].name));
    for (size_t j = 0; j < i; ++j) {
      if (options.cursors[j].name == options.cursors[i].name) {
        return InvalidArgument("log replication cursor \"" + options.cursors[i].name +
                               "\" is configured twice");
      }
    }
  }
  std::unique_ptr<LogJournal> j(new LogJournal(AbsolutePath(dir), std::move(options), clock));
  RETURN_IF_ERROR(j->Recover().WithContext("cannot open the log journal in " + j->dir_));
  if (j->options_.sync_interval > Duration::zero()) {
    j->syncer_ = std::thread([p = j.get()] { p->SyncLoop(); });
  }
  return j;
}

LogJournal::~LogJournal() {
  {
    std::lock_guard lock(mu_);
    closing_ = true;
  }
  sync_cv_.notify_all();
  if (syncer_.joinable()) syncer_.join();
  (void)Sync();
  (void)FlushCursors();
}

Status LogJournal::Recover() {
  std::lock_guard lock(mu_);
  RETURN_IF_ERROR(MakeDirs(dir_, 0750));
  std::vector<uint64_t> firsts;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
    if (auto first = ParseSegmentName(entry.path().filename().string())) {
      firsts.push_back(*first);
    }
  }
  if (ec) return Internal("cannot list " + dir_ + ": " + ec.message());
  std::sort(firsts.begin(), firsts.end());
  for (size_t i = 0; i < firsts.size(); ++i) {
    RETURN_IF_ERROR(RecoverSegment(SegmentName(firsts[i]), firsts[i], i + 1 == firsts.size()));
  }

  uint64_t max_acked = 0;
  for (const CursorOptions& o : options_.cursors) {
    Cursor c;
    c.options = o;
    std::string path = dir_ + "/" + std::string(kCursorPrefix) + o.name;
    if (PathExists(path)) {
      ASSIGN_OR_RETURN(std::string text, ReadFile(path));
      std::string_view t(text);
      uint64_t v = 0;
      bool ok = t.substr(0, kCursorMagic.size()) == kCursorMagic &&
                t.size() > kCursorMagic.size() + 1 && t.back() == '\n';
      for (char ch : t.substr(kCursorMagic.size(), ok ? t.size() - kCursorMagic.size() - 1 : 0)) {
        ok = ok && ch >= '0' && ch <= '9';
        v = v * 10 + static_cast<uint64_t>(ch - '0');
      }
      if (!ok) return Internal("cursor file " + path + " is damaged");
      c.acked = c.persisted = v;
    } else {
      c.acked = index_first_seq_ - 1;  // starts at the oldest retained record
      c.persisted = UINT64_MAX;        // written below
    }
    max_acked = std::max(max_acked, c.acked);
    cursors_.push_back(std::move(c));
  }

  const uint64_t last_in_segments = last_seq_;
  // A cursor past the last record: the records it acknowledged were lost in a crash (a machine
  // crash inside the durability window). Their seqs are never reused.
  if (max_acked > last_seq_) {
    if (max_acked - last_seq_ > kMaxSeqGap) {
      return Internal("a cursor is at seq " + std::to_string(max_acked) +
                      ", far past the journal's last record " + std::to_string(last_seq_));
    }
    if (index_.empty()) {
      index_first_seq_ = max_acked + 1;
    } else {
      index_.resize(index_.size() + (max_acked - last_seq_));
    }
    last_seq_ = max_acked;
  }
  synced_seq_ = last_seq_;

  // Appends continue in the last segment unless its records end before last_seq_.
  if (segments_.empty() || last_seq_ != last_in_segments) {
    RETURN_IF_ERROR(OpenNewSegment(last_seq_ + 1));
  }

  for (Cursor& c : cursors_) {
    RecountCursor(c);
    if (c.persisted == UINT64_MAX) RETURN_IF_ERROR(PersistCursor(c));
  }
  return Status::Ok();
}

Status LogJournal::RecoverSegment(const std::string& name, uint64_t first_seq, bool last) {
  std::string path = dir_ + "/" + name;
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return Errno(errno, "cannot open " + path);
  auto seg = std::make_shared<Segment>(first_seq, path, fd);
  ASSIGN_OR_RETURN(std::string data, ReadFile(path));
  if (data.size() > kMaxSegmentBytes + kHeaderBytes + kFixedPayloadBytes + kMaxKeyBytes) {
    return Internal("segment " + path + " is larger than a segment can be");
  }
  if (segments_.empty()) {
    index_first_seq_ = first_seq;
    last_seq_ = first_seq - 1;
  } else if (first_seq <= last_seq_) {
    return Internal("segment " + path + " starts at seq " + std::to_string(first_seq) +
                    ", not after the previous segment's " + std::to_string(last_seq_));
  } else if (first_seq - last_seq_ > kMaxSeqGap) {
    return Internal("segment " + path + " starts far past the previous segment's last seq");
  } else {
    // Seqs lost in a crash between two segments stay empty.
    index_.resize(index_.size() + (first_seq - 1 - last_seq_));
    last_seq_ = first_seq - 1;
  }
  size_t pos = 0;
  while (pos < data.size()) {
    JournalRecord r;
    size_t n = 0;
    bool ok = DecodeRecord(std::string_view(data).substr(pos), &r, &n);
    if (ok && (r.seq <= last_seq_ || r.seq < first_seq || r.seq - last_seq_ > kMaxSeqGap)) {
      ok = false;
    }
    if (!ok) {
      if (!last) {
        return Internal("segment " + path + " is damaged at byte " + std::to_string(pos));
      }
      // A torn last record (a crash mid-append): cut it off so appends continue after the
      // last whole record.
      if (ftruncate(fd, static_cast<off_t>(pos)) != 0) {
        return Errno(errno, "cannot cut the torn record off " + path);
      }
      break;
    }
    // Seqs missing between segments or records were lost in a crash before the cursor that
    // skipped them was written; they stay empty.
    index_.resize(index_.size() + (r.seq - last_seq_ - 1));
    index_.push_back(IndexEntry{r.written_at_ms, r.length, static_cast<uint32_t>(pos),
                                static_cast<uint8_t>(r.origin)});
    last_seq_ = r.seq;
    pos += n;
  }
  seg->size = pos;
  segments_.push_back(std::move(seg));
  return Status::Ok();
}

Status LogJournal::OpenNewSegment(uint64_t first_seq) {
  std::string path = dir_ + "/" + SegmentName(first_seq);
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) return Errno(errno, "cannot create " + path);
  segments_.push_back(std::make_shared<Segment>(first_seq, path, fd));
  SyncDir(dir_);
  return Status::Ok();
}

bool LogJournal::Matches(const Cursor& c, uint8_t origin) {
  if (origin == 0) return false;
  return !c.options.local_only || origin == static_cast<uint8_t>(Origin::kLocal);
}

bool LogJournal::Wants(Origin origin) const {
  // Cursors are fixed when the journal opens.
  return std::any_of(cursors_.begin(), cursors_.end(),
                     [&](const Cursor& c) { return Matches(c, static_cast<uint8_t>(origin)); });
}

const LogJournal::IndexEntry* LogJournal::Entry(uint64_t seq) const {
  if (seq < index_first_seq_ || seq - index_first_seq_ >= index_.size()) return nullptr;
  return &index_[seq - index_first_seq_];
}

void LogJournal::RecountCursor(Cursor& c) {
  c.pending_chunks = c.pending_bytes = 0;
  c.first_pending = 0;
  for (uint64_t seq = std::max(c.acked + 1, index_first_seq_); seq <= last_seq_; ++seq) {
    const IndexEntry* e = Entry(seq);
    if (!Matches(c, e->origin)) continue;
    if (c.first_pending == 0) c.first_pending = seq;
    ++c.pending_chunks;
    c.pending_bytes += e->length;
  }
}

void LogJournal::AdvanceFirstPending(Cursor& c, uint64_t from) {
  c.first_pending = 0;
  if (c.pending_chunks == 0) return;
  for (uint64_t seq = std::max(from, index_first_seq_); seq <= last_seq_; ++seq) {
    if (Matches(c, Entry(seq)->origin)) {
      c.first_pending = seq;
      return;
    }
  }
}

Status LogJournal::PersistCursor(Cursor& c) {
  std::string path = dir_ + "/" + std::string(kCursorPrefix) + c.options.name;
  RETURN_IF_ERROR(
      WriteFileAtomic(path, std::string(kCursorMagic) + std::to_string(c.acked) + "\n", 0640));
  c.persisted = c.acked;
  c.persisted_at = clock_.Now();
  return Status::Ok();
}

LogJournal::Cursor* LogJournal::FindCursor(std::string_view name) {
  for (Cursor& c : cursors_) {
    if (c.options.name == name) return &c;
  }
  return nullptr;
}

const LogJournal::Cursor* LogJournal::FindCursor(std::string_view name) const {
  for (const Cursor& c : cursors_) {
    if (c.options.name == name) return &c;
  }
  return nullptr;
}

Result<uint64_t> LogJournal::Append(std::string_view key, uint64_t offset, uint64_t length,
                                    uint32_t checksum, Origin origin, std::string_view data) {
  if (key.empty() || key.size() > kMaxKeyBytes) {
    return InvalidArgument("a journaled log key must be 1 to " + std::to_string(kMaxKeyBytes) +
                           " bytes");
  }
  bool inline_sync = false;
  Status synced;
  uint64_t seq = 0;
  {
    std::lock_guard lock(mu_);
    seq = last_seq_ + 1;
    JournalRecord r{seq, std::string(key), offset, length, checksum, WallMs(clock_), origin};
    std::string bytes = EncodeRecord(r);
    if (segments_.back()->size > 0 &&
        segments_.back()->size + bytes.size() > options_.segment_bytes) {
      // A segment is synced whole before the next one starts, so only the last one can hold
      // unsynced or torn records.
      if (fdatasync(segments_.back()->fd) != 0) {
        return Errno(errno, "cannot sync " + segments_.back()->path);
      }
      synced_seq_ = last_seq_;
      RETURN_IF_ERROR(OpenNewSegment(seq));
    }
    Segment& seg = *segments_.back();
    size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = pwrite(seg.fd, bytes.data() + done, bytes.size() - done,
                         static_cast<off_t>(seg.size + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        Status s = Errno(n < 0 ? errno : EIO, "cannot append to the log journal " + seg.path);
        // Leave no partial record behind for a later append to follow.
        (void)ftruncate(seg.fd, static_cast<off_t>(seg.size));
        return s;
      }
      done += static_cast<size_t>(n);
    }
    index_.push_back(IndexEntry{r.written_at_ms, length, static_cast<uint32_t>(seg.size),
                                static_cast<uint8_t>(origin)});
    seg.size += bytes.size();
    last_seq_ = seq;
    if (options_.memory_bytes > 0 && data.size() == length) {
      if (held_.empty()) held_first_seq_ = seq;
      held_.push_back(Held{std::string(key), offset, checksum, std::string(data)});
      held_bytes_ += key.size() + length;
      while (held_bytes_ > options_.memory_bytes) {
        held_bytes_ -= held_.front().key.size() + held_.front().data.size();
        held_.pop_front();
        ++held_first_seq_;
      }
    } else if (!held_.empty()) {
      held_.clear();  // what is held follows each other up to the last record
      held_bytes_ = 0;
    }
    for (Cursor& c : cursors_) {
      if (!Matches(c, static_cast<uint8_t>(origin))) continue;
      if (c.first_pending == 0) c.first_pending = seq;
      ++c.pending_chunks;
      c.pending_bytes += length;
    }
    if (options_.sync_interval <= Duration::zero()) {
      inline_sync = true;
    } else if (!sync_error_.ok()) {
      synced = sync_error_;
      sync_error_ = Status::Ok();
    }
  }
  if (inline_sync) synced = Sync();
  {
    std::lock_guard lock(listeners_mu_);
    for (auto& [id, fn] : listeners_) fn();
  }
  RETURN_IF_ERROR(synced);
  return seq;
}

Status LogJournal::Sync() {
  uint64_t want = 0;
  {
    std::lock_guard lock(mu_);
    if (synced_seq_ >= last_seq_) return Status::Ok();
    want = last_seq_;
  }
  std::lock_guard sync_lock(sync_mu_);
  std::shared_ptr<Segment> seg;
  uint64_t target = 0;
  {
    std::lock_guard lock(mu_);
    if (synced_seq_ >= want) return Status::Ok();  // the fsync this one waited for covered it
    seg = segments_.back();
    target = last_seq_;
  }
  // Segments before the last one were synced when the next one started.
  if (fdatasync(seg->fd) != 0) return Errno(errno, "cannot sync " + seg->path);
  std::lock_guard lock(mu_);
  synced_seq_ = std::max(synced_seq_, target);
  return Status::Ok();
}

void LogJournal::SyncLoop() {
  std::unique_lock lock(mu_);
  while (!closing_) {
    sync_cv_.wait_for(lock, options_.sync_interval, [this] { return closing_; });
    if (closing_ || synced_seq_ >= last_seq_) continue;
    lock.unlock();
    Status s = Sync();
    lock.lock();
    if (!s.ok()) sync_error_ = s;
  }
}

Status LogJournal::PlanReads(const std::vector<uint64_t>& seqs,
                             std::vector<ReadPlan>* plans) const {
  size_t i = 0;
  while (i < seqs.size()) {
    // The segment holding seqs[i], and the wanted seqs that share it.
    auto it = std::upper_bound(
        segments_.begin(), segments_.end(), seqs[i],
        [](uint64_t seq, const std::shared_ptr<Segment>& s) { return seq < s->first_seq; });
    if (it == segments_.begin()) return Internal("seq " + std::to_string(seqs[i]) + " is trimmed");
    ReadPlan plan;
    plan.seg = *std::prev(it);
    uint64_t next_first = it == segments_.end() ? UINT64_MAX : (*it)->first_seq;
    size_t j = i;
    while (j < seqs.size() && seqs[j] < next_first) ++j;
    plan.from = Entry(seqs[i])->file_offset;
    const IndexEntry* after = Entry(seqs[j - 1] + 1);
    plan.to = seqs[j - 1] + 1 < next_first && after != nullptr && after->origin != 0
                  ? after->file_offset
                  : plan.seg->size;
    plan.seqs.assign(seqs.begin() + static_cast<std::ptrdiff_t>(i),
                     seqs.begin() + static_cast<std::ptrdiff_t>(j));
    plans->push_back(std::move(plan));
    i = j;
  }
  return Status::Ok();
}

Status LogJournal::ExecuteReads(const std::vector<ReadPlan>& plans,
                                std::vector<JournalRecord>* out) {
  for (const ReadPlan& plan : plans) {
    const Segment& seg = *plan.seg;
    std::string buf(plan.to - plan.from, '\0');
    size_t got = 0;
    while (got < buf.size()) {
      ssize_t n =
          pread(seg.fd, buf.data() + got, buf.size() - got, static_cast<off_t>(plan.from + got));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return Errno(n < 0 ? errno : EIO, "cannot read " + seg.path);
      got += static_cast<size_t>(n);
    }
    size_t pos = 0;
    size_t k = 0;
    while (k < plan.seqs.size()) {
      JournalRecord r;
      size_t n = 0;
      if (!DecodeRecord(std::string_view(buf).substr(pos), &r, &n)) {
        return Internal("segment " + seg.path + " is damaged at byte " +
                        std::to_string(plan.from + pos));
      }
      pos += n;
      if (r.seq == plan.seqs[k]) {
        out->push_back(std::move(r));
        ++k;
      }
    }
  }
  return Status::Ok();
}

Status LogJournal::ReadRecords(const std::vector<uint64_t>& seqs,
                               std::vector<JournalRecord>* out) const {
  std::vector<ReadPlan> plans;
  RETURN_IF_ERROR(PlanReads(seqs, &plans));
  return ExecuteReads(plans, out);
}

Result<PendingBatch> LogJournal::ReadPending(std::string_view cursor, size_t max_records,
                                             uint64_t max_bytes) const {
  PendingBatch batch;
  std::vector<ReadPlan> plans;
  std::vector<JournalRecord> held;  // newer than what the plans read
  {
    std::lock_guard lock(mu_);
    const Cursor* c = FindCursor(cursor);
    if (c == nullptr) return NotFound("no log replication cursor \"" + std::string(cursor) + "\"");
    batch.through_seq = std::max(c->acked, last_seq_);
    if (c->first_pending == 0 || max_records == 0) {
      if (max_records == 0) batch.through_seq = c->acked;
      return batch;
    }
    std::vector<uint64_t> seqs;
    uint64_t bytes = 0;
    for (uint64_t seq = c->first_pending; seq <= last_seq_; ++seq) {
      const IndexEntry* e = Entry(seq);
      batch.through_seq = seq;
      if (!Matches(*c, e->origin)) continue;
      seqs.push_back(seq);
      bytes += e->length;
      if (seqs.size() >= max_records || bytes >= max_bytes) break;
    }
    // The newest records are held in memory with their bytes; only older ones are read from
    // the segments.
    const auto held_from =
        held_.empty() ? seqs.end() : std::lower_bound(seqs.begin(), seqs.end(), held_first_seq_);
    for (auto it = held_from; it != seqs.end(); ++it) {
      const Held& h = held_[*it - held_first_seq_];
      const IndexEntry* e = Entry(*it);
      held.push_back(JournalRecord{*it, h.key, h.offset, e->length, h.checksum, e->written_at_ms,
                                   static_cast<Origin>(e->origin), h.data});
    }
    seqs.erase(held_from, seqs.end());
    RETURN_IF_ERROR(PlanReads(seqs, &plans));
  }
  // The records are read outside mu_ (the segments stay open while the plans hold them), so
  // appends do not wait for the shipper's reads.
  RETURN_IF_ERROR(ExecuteReads(plans, &batch.records));
  batch.records.insert(batch.records.end(), std::make_move_iterator(held.begin()),
                       std::make_move_iterator(held.end()));
  return batch;
}

Status LogJournal::Acknowledge(std::string_view cursor, uint64_t through_seq) {
  std::string persist;  // a cursor whose file is due
  Status trimmed;
  {
    std::lock_guard lock(mu_);
    Cursor* c = FindCursor(cursor);
    if (c == nullptr) return NotFound("no log replication cursor \"" + std::string(cursor) + "\"");
    if (through_seq <= c->acked) return Status::Ok();
    if (through_seq > last_seq_) {
      return InvalidArgument("cannot acknowledge seq " + std::to_string(through_seq) +
                             " for cursor " + c->options.name + ": the last record is " +
                             std::to_string(last_seq_));
    }
    if (c->first_pending != 0) {
      for (uint64_t seq = c->first_pending; seq <= through_seq; ++seq) {
        const IndexEntry* e = Entry(seq);
        if (!Matches(*c, e->origin)) continue;
        --c->pending_chunks;
        c->pending_bytes -= e->length;
      }
      if (c->first_pending <= through_seq) AdvanceFirstPending(*c, through_seq + 1);
    }
    c->acked = through_seq;
    if (clock_.Now() - c->persisted_at >= options_.cursor_sync_interval) {
      persist = c->options.name;
      c->persisted_at = clock_.Now();
    }
    trimmed = TrimLocked();
  }
  // The cursor file is written and fsynced outside mu_: appends do not wait for the disk.
  if (!persist.empty()) RETURN_IF_ERROR(WriteCursorFile(persist));
  return trimmed;
}

Status LogJournal::WriteCursorFile(const std::string& name) {
  std::lock_guard files(cursor_files_mu_);
  uint64_t acked = 0;
  {
    std::lock_guard lock(mu_);
    const Cursor* c = FindCursor(name);
    if (c == nullptr || c->persisted == c->acked) return Status::Ok();
    acked = c->acked;  // the newest value: writers are serialised by cursor_files_mu_
  }
  const std::string path = dir_ + "/" + std::string(kCursorPrefix) + name;
  RETURN_IF_ERROR(
      WriteFileAtomic(path, std::string(kCursorMagic) + std::to_string(acked) + "\n", 0640));
  std::lock_guard lock(mu_);
  if (Cursor* c = FindCursor(name)) c->persisted = acked;
  return Status::Ok();
}

Result<DiscardResult> LogJournal::DiscardPending(std::string_view cursor) {
  std::lock_guard files(cursor_files_mu_);
  std::lock_guard lock(mu_);
  Cursor* c = FindCursor(cursor);
  if (c == nullptr) return NotFound("no log replication cursor \"" + std::string(cursor) + "\"");
  DiscardResult result;
  if (c->first_pending != 0) {
    std::vector<uint64_t> seqs;
    for (uint64_t seq = c->first_pending; seq <= last_seq_; ++seq) {
      if (Matches(*c, Entry(seq)->origin)) seqs.push_back(seq);
    }
    std::vector<JournalRecord> records;
    RETURN_IF_ERROR(ReadRecords(seqs, &records));
    for (const JournalRecord& r : records) {
      ++result.chunks;
      result.bytes += r.length;
      result.first_offset_by_key.emplace(r.key, r.offset);  // the first (lowest seq) wins
    }
  }
  c->acked = std::max(c->acked, last_seq_);
  c->pending_chunks = c->pending_bytes = 0;
  c->first_pending = 0;
  RETURN_IF_ERROR(PersistCursor(*c));
  RETURN_IF_ERROR(TrimLocked());
  return result;
}

CursorStats LogJournal::StatsLocked(const Cursor& c) const {
  CursorStats s;
  s.name = c.options.name;
  s.local_only = c.options.local_only;
  s.acked_seq = c.acked;
  s.chunks_behind = c.pending_chunks;
  s.bytes_behind = c.pending_bytes;
  if (const IndexEntry* e = c.first_pending != 0 ? Entry(c.first_pending) : nullptr) {
    s.oldest_unacked_ms = e->written_at_ms;
    s.oldest_unacked_age = std::max(
        Duration::zero(), Duration(std::chrono::milliseconds(WallMs(clock_) - e->written_at_ms)));
  }
  return s;
}

Result<CursorStats> LogJournal::Stats(std::string_view cursor) const {
  std::lock_guard lock(mu_);
  const Cursor* c = FindCursor(cursor);
  if (c == nullptr) return NotFound("no log replication cursor \"" + std::string(cursor) + "\"");
  return StatsLocked(*c);
}

std::vector<CursorStats> LogJournal::AllStats() const {
  std::lock_guard lock(mu_);
  std::vector<CursorStats> out;
  out.reserve(cursors_.size());
  for (const Cursor& c : cursors_) out.push_back(StatsLocked(c));
  return out;
}

Status LogJournal::FlushCursors() {
  std::lock_guard files(cursor_files_mu_);
  std::lock_guard lock(mu_);
  for (Cursor& c : cursors_) {
    if (c.persisted != c.acked) RETURN_IF_ERROR(PersistCursor(c));
  }
  return Status::Ok();
}

Status LogJournal::Trim() {
  std::lock_guard lock(mu_);
  return TrimLocked();
}

void LogJournal::ForgetBelow(uint64_t seq) {
  while (!held_.empty() && held_first_seq_ < seq) {
    held_bytes_ -= held_.front().key.size() + held_.front().data.size();
    held_.pop_front();
    ++held_first_seq_;
  }
}

Status LogJournal::TrimLocked() {
  uint64_t keep_from = last_seq_ + 1;
  for (const Cursor& c : cursors_) {
    if (c.first_pending != 0) keep_from = std::min(keep_from, c.first_pending);
  }
  ForgetBelow(keep_from);
  while (segments_.size() > 1 && segments_[1]->first_seq <= keep_from) {
    const Segment& old = *segments_.front();
    if (unlink(old.path.c_str()) != 0 && errno != ENOENT) {
      return Errno(errno, "cannot remove " + old.path);
    }
    uint64_t drop = segments_[1]->first_seq - index_first_seq_;
    index_.erase(index_.begin(), index_.begin() + static_cast<std::ptrdiff_t>(drop));
    index_first_seq_ = segments_[1]->first_seq;
    segments_.erase(segments_.begin());
  }
  return Status::Ok();
}

int LogJournal::AddListener(std::function<void()> fn) {
  std::lock_guard lock(listeners_mu_);
  int id = next_listener_++;
  listeners_.emplace(id, std::move(fn));
  return id;
}

void LogJournal::RemoveListener(int id) {
  std::lock_guard lock(listeners_mu_);
  listeners_.erase(id);
}

uint64_t LogJournal::memory_bytes_held() const {
  std::lock_guard lock(mu_);
  return held_bytes_;
}

uint64_t LogJournal::last_seq() const {
  std::lock_guard lock(mu_);
  return last_seq_;
}

uint64_t LogJournal::synced_seq() const {
  std::lock_guard lock(mu_);
  return synced_seq_;
}

size_t LogJournal::segment_count() const {
  std::lock_guard lock(mu_);
  return segments_.size();
}

}  // namespace tandem::replication
