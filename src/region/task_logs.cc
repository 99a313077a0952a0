#include "region/task_logs.h"

#include <spdlog/spdlog.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "api/json_util.h"
#include "base/fs.h"
#include "crypto/secret_box.h"
#include "logs/log_store.h"
#include "logs/s3_log_store.h"
#include "replication/apply_chunk.h"
#include "replication/chunk.h"
#include "replication/log_journal.h"
#include "replication/log_shipper.h"
#include "replication/replicating_log_store.h"
#include "rpc/client.h"

namespace tandem::region {
namespace {

using Json = nlohmann::json;
using replication::ApplyResult;
using replication::Chunk;

constexpr const char* kPeer = "peer";
constexpr const char* kS3 = "s3";
// A batch stays well under the API's body limit once base64 has grown it by a third.
constexpr uint64_t kMaxBatchBytes = uint64_t{1} << 20;
// A shipper that caught up waits this long from the start of its round before the next: with
// 1,250 tasks writing, sending whatever had arrived as soon as the answer came made ~30 requests
// a second of ~100 chunks each, and each request costs both regions the same whatever its size.
constexpr Duration kBatchInterval = std::chrono::milliseconds(100);
// The latest chunks the journal keeps in memory for the shipper (bytes and keys), so that one
// keeping up never reads them back from the log files (an open-file lookup, two fstats and a
// pread a record were a third of its CPU with 1,250 tasks writing); with those tasks' 1.2 MiB/s
// of lines and their keys this is the last ~10 s. Older ones, a backlog after an outage, are
// read back.
constexpr uint64_t kJournalMemoryBytes = uint64_t{16} << 20;
// Threads that apply a received batch (by log, see Receive).
constexpr size_t kReceiveThreads = 2;

double Secs(Duration d) { return std::chrono::duration<double>(d).count(); }

// The bounds of tandem_log_replication_acked_within_total, in ms (-1: all).
constexpr std::pair<const char*, int64_t> kLagBounds[] = {
    {"0.1", 100}, {"0.25", 250}, {"0.5", 500},  {"1", 1000},   {"2.5", 2500},
    {"5", 5000},  {"10", 10000}, {"30", 30000}, {"60", 60000}, {"+Inf", -1}};

// The peer region's POST /internal/v1/logs/chunks.
//   request:  {"epoch": N, "from": "region-a",
//              "chunks": [{"key": K, "offset": O, "checksum": "crc32c hex", "data": "base64"}]}
//   response: {"results": [{"ok": true, "size": S} |
//                          {"ok": false, "code": "gap"|"conflict"|"invalid", "detail": D,
//                           "size": S}]}
// One result per chunk, in order; a batch the receiver refuses whole (a stale epoch, a bad
// credential) is an HTTP error and acknowledges nothing.
class PeerSink final : public replication::ChunkSink {
 public:
  PeerSink(TaskLogs::Peer peer, std::string from)
      : peer_(std::move(peer)),
        from_(std::move(from)),
        client_(peer_.url, peer_.credential, std::chrono::seconds(10), peer_.source_address,
                peer_.trust) {}

  Result<std::vector<ApplyResult>> Apply(const std::vector<Chunk>& chunks) override {
    const int64_t epoch = peer_.epoch ? peer_.epoch() : 0;
    ASSIGN_OR_RETURN(std::string reply,
                     client_.CallOk("POST", "/internal/v1/logs/chunks", Body(epoch, chunks)));
    Json j = Json::parse(reply, nullptr, false);
    if (!j.is_object() || !j["results"].is_array()) {
      return Internal("the peer region answered chunks with " + reply.substr(0, 200));
    }
    std::vector<ApplyResult> out;
    for (const Json& r : j["results"]) {
      ApplyResult a;
      a.receiver_size = r.value("size", uint64_t{0});
      if (!r.value("ok", false)) {
        const std::string code = r.value("code", "");
        std::string detail = "peer region: " + r.value("detail", std::string("refused"));
        a.status = code == "gap"        ? FailedPrecondition(detail)
                   : code == "conflict" ? AlreadyExists(detail)
                                        : InvalidArgument(detail);
      }
      out.push_back(std::move(a));
      if (out.size() == chunks.size()) break;
    }
    return out;
  }

 private:
  // The request written out directly: building a JSON value of a megabyte of base64 and dumping
  // it (escaping every character) cost more than the rest of a round's sending.
  std::string Body(int64_t epoch, const std::vector<Chunk>& chunks) const {
    size_t size = 64;
    for (const Chunk& c : chunks) size += c.key.size() + c.data.size() * 4 / 3 + 96;
    std::string body;
    body.reserve(size);
    body +=
        "{\"epoch\":" + std::to_string(epoch) + ",\"from\":" + Json(from_).dump() + ",\"chunks\":[";
    for (size_t i = 0; i < chunks.size(); ++i) {
      const Chunk& c = chunks[i];
      if (i > 0) body += ',';
      body += "{\"key\":" + Json(c.key).dump() + ",\"offset\":" + std::to_string(c.offset) +
              ",\"checksum\":\"" + replication::ChecksumToHex(c.checksum) + "\",\"data\":\"";
      body += Base64Encode(c.data);  // base64 needs no escaping
      body += "\"}";
    }
    body += "]}";
    return body;
  }

  const TaskLogs::Peer peer_;
  const std::string from_;
  const rpc::Client client_;
};

// Reads from the local directory first; a log it lacks comes from the object store (a log
// written before this region's directory was new, say).
// Appends are cut into chunks of at most task_logs.chunk_bytes, each journaled on its own.
class TieredStore final : public logs::LogStore {
 public:
  TieredStore(logs::LogStore* local, logs::LogStore* remote, size_t chunk_bytes)
      : local_(local), remote_(remote), chunk_bytes_(chunk_bytes) {}

  Status Append(std::string_view key, std::string_view data) override {
    if (data.size() <= chunk_bytes_) return local_->Append(key, data);
    for (size_t at = 0; at < data.size(); at += chunk_bytes_) {
      RETURN_IF_ERROR(local_->Append(key, data.substr(at, chunk_bytes_)));
    }
    return Status::Ok();
  }
  Result<logs::LogChunk> Read(std::string_view key, uint64_t offset, uint64_t max_bytes) override {
    Result<logs::LogChunk> r = local_->Read(key, offset, max_bytes);
    if (r.ok() || r.status().code() != Code::kNotFound || remote_ == nullptr) return r;
    return remote_->Read(key, offset, max_bytes);
  }
  Status Remove(std::string_view key) override {
    RETURN_IF_ERROR(local_->Remove(key));
    return remote_ != nullptr ? remote_->Remove(key) : Status::Ok();
  }

 private:
  logs::LogStore* const local_;
  logs::LogStore* const remote_;
  const size_t chunk_bytes_;
};

Result<std::string> S3Secret(const S3Settings& s3) {
  if (!s3.secret_access_key_file.empty()) {
    ASSIGN_OR_RETURN(std::string text, ReadFile(s3.secret_access_key_file));
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    if (text.empty()) {
      return InvalidArgument("task_logs.s3.secret_access_key_file " + s3.secret_access_key_file +
                             " is empty");
    }
    return text;
  }
  return s3.secret_access_key;
}

LogSinkView ViewOf(const replication::ShipperStats& s) {
  LogSinkView v;
  v.sink = s.cursor;
  v.paused = s.paused;
  v.chunks_behind = s.chunks_behind;
  v.bytes_behind = s.bytes_behind;
  v.oldest_unreplicated_s = s.chunks_behind > 0 ? Secs(s.oldest_unacked_age) : 0;
  v.lag_p50_s = Secs(s.lag_p50);
  v.lag_p99_s = Secs(s.lag_p99);
  v.lag_samples = s.lag_samples;
  v.bytes_shipped = s.bytes_shipped;
  v.batches_sent = s.batches_sent;
  v.chunks_sent = s.chunks_sent;
  if (s.consecutive_failures > 0) v.last_error = s.last_error;
  return v;
}

}  // namespace

struct TaskLogs::Impl {
  std::string region;
  std::optional<TaskLogs::Peer> peer;
  std::unique_ptr<logs::DirLogStore> local;
  std::unique_ptr<logs::S3LogStore> s3;
  std::unique_ptr<replication::LogJournal> journal;
  std::unique_ptr<replication::ReplicatingLogStore> replicating;
  std::unique_ptr<TieredStore> tiered;
  std::unique_ptr<replication::LogShipper> peer_shipper;
  std::unique_ptr<replication::LogShipper> s3_shipper;
  MetricsRegistry* metrics = nullptr;
};

TaskLogs::TaskLogs(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

TaskLogs::~TaskLogs() { Stop(); }

Result<std::unique_ptr<TaskLogs>> TaskLogs::Open(const RegionConfig& cfg, std::optional<Peer> peer,
                                                 MetricsRegistry* metrics) {
  auto impl = std::make_unique<Impl>();
  impl->region = cfg.name;
  impl->peer = peer;
  impl->metrics = metrics;
  ASSIGN_OR_RETURN(impl->local, logs::DirLogStore::Open(cfg.state_dir + "/logs"));
  const TaskLogSettings& tl = cfg.task_logs;
  if (tl.backend == "s3") {
    if (!tl.s3) return InvalidArgument("task_logs.backend is s3 but task_logs.s3 is missing");
    logs::S3LogStoreOptions o;
    o.endpoint = tl.s3->endpoint;
    o.bucket = tl.s3->bucket;
    o.region = tl.s3->region;
    o.access_key_id = tl.s3->access_key_id;
    ASSIGN_OR_RETURN(o.secret_access_key, S3Secret(*tl.s3));
    // The config's prefix ends with '/'; the store adds its own.
    o.key_prefix = tl.s3->prefix;
    while (!o.key_prefix.empty() && o.key_prefix.back() == '/') o.key_prefix.pop_back();
    ASSIGN_OR_RETURN(impl->s3, logs::S3LogStore::Open(std::move(o)));
  }
  replication::JournalOptions jo;
  jo.memory_bytes = kJournalMemoryBytes;
  if (peer) jo.cursors.push_back({kPeer, /*local_only=*/true});
  if (impl->s3) jo.cursors.push_back({kS3, /*local_only=*/false});
  ASSIGN_OR_RETURN(impl->journal, replication::LogJournal::Open(cfg.state_dir + "/log-journal",
                                                                std::move(jo), RealClock()));
  replication::ReplicatingLogStoreOptions ro;
  ro.max_unacked_bytes = static_cast<uint64_t>(tl.spool_bound_bytes);
  impl->replicating =
      std::make_unique<replication::ReplicatingLogStore>(*impl->local, *impl->journal, ro);
  impl->tiered = std::make_unique<TieredStore>(impl->replicating.get(), impl->s3.get(),
                                               static_cast<size_t>(tl.chunk_bytes));

  replication::ShipperOptions so;
  so.max_batch_bytes = kMaxBatchBytes;
  so.batch_interval = kBatchInterval;
  if (impl->s3) {
    impl->s3_shipper = std::make_unique<replication::LogShipper>(
        *impl->journal, *impl->local, std::make_unique<replication::StoreSink>(*impl->s3), kS3, so,
        RealClock());
    impl->s3_shipper->Start();
  }
  if (peer) {
    so.start_paused = true;  // until the DR agent says this region is active
    impl->peer_shipper = std::make_unique<replication::LogShipper>(
        *impl->journal, *impl->local, std::make_unique<PeerSink>(*peer, cfg.name), kPeer, so,
        RealClock());
    impl->peer_shipper->Start();
  }

  if (metrics != nullptr) {
    metrics->Describe("tandem_log_replication_chunks_behind", "gauge",
                      "Task log chunks a sink does not hold yet.");
    metrics->Describe("tandem_log_replication_bytes_behind", "gauge",
                      "Task log bytes a sink does not hold yet.");
    metrics->Describe("tandem_log_replication_oldest_seconds", "gauge",
                      "Age of the oldest task log chunk a sink does not hold yet.");
    metrics->Describe("tandem_log_replication_lag_seconds", "gauge",
                      "Time from a chunk's append to the sink's acknowledgement (quantiles).");
    metrics->Describe("tandem_log_replication_bytes_total", "counter",
                      "Task log bytes a sink acknowledged.");
    metrics->Describe("tandem_log_replication_batches_total", "counter",
                      "Requests a sink was sent (each a batch of chunks).");
    metrics->Describe("tandem_log_replication_chunks_sent_total", "counter",
                      "Chunks a sink was sent, resends included (the records of one log that "
                      "follow each other go as one chunk).");
    metrics->Describe("tandem_log_replication_acked_within_total", "counter",
                      "Task log chunks a sink acknowledged within `within` seconds of their "
                      "append (cumulative, like a histogram's buckets: two scrapes give the lag "
                      "of what was acknowledged between them).");
    Impl* raw = impl.get();
    metrics->OnScrape("tandem_log_replication_chunks_behind", [raw, metrics] {
      std::vector<std::pair<Labels, double>> behind;
      for (auto* s : {raw->peer_shipper.get(), raw->s3_shipper.get()}) {
        if (s == nullptr) continue;
        LogSinkView v = ViewOf(s->stats());
        const Labels l = {{"sink", v.sink}};
        behind.emplace_back(l, static_cast<double>(v.chunks_behind));
        metrics->Set("tandem_log_replication_bytes_behind", l, static_cast<double>(v.bytes_behind));
        metrics->Set("tandem_log_replication_oldest_seconds", l, v.oldest_unreplicated_s);
        metrics->Set("tandem_log_replication_lag_seconds", {{"sink", v.sink}, {"quantile", "0.5"}},
                     v.lag_p50_s);
        metrics->Set("tandem_log_replication_lag_seconds", {{"sink", v.sink}, {"quantile", "0.99"}},
                     v.lag_p99_s);
        metrics->Set("tandem_log_replication_bytes_total", l, static_cast<double>(v.bytes_shipped));
        metrics->Set("tandem_log_replication_batches_total", l,
                     static_cast<double>(v.batches_sent));
        metrics->Set("tandem_log_replication_chunks_sent_total", l,
                     static_cast<double>(v.chunks_sent));
        for (const auto& [label, ms] : kLagBounds) {
          const auto n =
              ms < 0 ? s->lag().count() : s->lag().CountAtMost(std::chrono::milliseconds(ms));
          metrics->Set("tandem_log_replication_acked_within_total",
                       {{"sink", v.sink}, {"within", label}}, static_cast<double>(n));
        }
      }
      return behind;
    });
  }
  return std::unique_ptr<TaskLogs>(new TaskLogs(std::move(impl)));
}

void TaskLogs::Stop() {
  if (!impl_) return;
  if (impl_->peer_shipper) impl_->peer_shipper->Stop();
  if (impl_->s3_shipper) impl_->s3_shipper->Stop();
  if (impl_->journal) {
    (void)impl_->journal->Sync();
    (void)impl_->journal->FlushCursors();
  }
}

logs::LogStore* TaskLogs::store() const { return impl_->tiered.get(); }

void TaskLogs::ShipToPeer(bool ship) {
  if (!impl_->peer_shipper) return;
  if (ship) {
    impl_->peer_shipper->Resume();
  } else {
    impl_->peer_shipper->Pause();
  }
}

bool TaskLogs::FlushToPeer(Duration timeout) {
  if (!impl_->peer_shipper) return true;
  const MonoTime until = RealClock().Now() + timeout;
  while (true) {
    impl_->peer_shipper->Hurry();
    if (impl_->peer_shipper->stats().chunks_behind == 0) return true;
    if (RealClock().Now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Result<std::string> TaskLogs::DiscardPeerBacklog() {
  if (!impl_->peer_shipper) return std::string();
  ASSIGN_OR_RETURN(replication::DiscardResult d, impl_->peer_shipper->DiscardPending());
  if (d.first_offset_by_key.empty()) {
    return std::string("no task log chunks were waiting for the peer");
  }
  // The cursor is saved lazily, so the peer may hold more than it says: ask it what it has of
  // each log, and cut this region's copies to exactly that (never past what the journal
  // says is unacknowledged).
  std::map<std::string, uint64_t> keep_to = d.first_offset_by_key;
  Json keys = Json::array();
  for (const auto& [key, offset] : keep_to) keys.push_back(key);
  rpc::Client peer(impl_->peer->url, impl_->peer->credential, std::chrono::seconds(10),
                   impl_->peer->source_address, impl_->peer->trust);
  Result<std::string> asked =
      peer.CallOk("POST", "/internal/v1/logs/sizes", Json{{"keys", keys}}.dump());
  if (asked.ok()) {
    Json sizes = Json::parse(*asked, nullptr, false);
    if (sizes.is_object() && sizes.contains("sizes") && sizes.at("sizes").is_object()) {
      for (auto& [key, offset] : keep_to) {
        const Json& n = sizes.at("sizes").value(key, Json());
        if (n.is_number_unsigned()) offset = std::max(offset, n.get<uint64_t>());
      }
    }
  } else {
    spdlog::warn("task logs: {} did not say what it holds ({}); cutting to what it acknowledged",
                 impl_->peer->url, asked.status().ToString());
  }
  // Through the replicating store, so its sizes stay right; the prefix kept is what the peer
  // holds too, so it is written back as received, not as this region's own.
  int cut = 0;
  uint64_t bytes = 0;
  for (const auto& [key, offset] : keep_to) {
    Result<logs::LogChunk> head = impl_->local->Read(key, 0, 0);
    if (!head.ok() || head->size <= offset) continue;
    const uint64_t size = head->size;
    std::string keep;
    bool read = true;
    while (keep.size() < offset) {
      Result<logs::LogChunk> part = impl_->local->Read(key, keep.size(), offset - keep.size());
      if (!part.ok() || part->data.empty()) {
        read = part.ok();
        break;
      }
      keep += part->data;
    }
    if (!read) continue;
    if (!impl_->replicating->Remove(key).ok()) continue;
    if (!keep.empty() && !impl_->replicating->replica_view().Append(key, keep).ok()) continue;
    ++cut;
    bytes += size - keep.size();
  }
  return std::to_string(bytes) + " bytes of task logs the new primary never received were " +
         "discarded from " + std::to_string(cut) + " logs";
}

Result<std::string> TaskLogs::Sizes(const std::string& body) {
  ASSIGN_OR_RETURN(const Json j, api::ParseJson(body, "the request body"));
  if (!j.is_object() || !j.contains("keys") || !j.at("keys").is_array()) {
    return InvalidArgument("expected {\"keys\": [...]}");
  }
  Json sizes = Json::object();
  for (const Json& k : j.at("keys")) {
    if (!k.is_string()) return InvalidArgument("keys must be strings");
    const std::string key = k.get<std::string>();
    Result<logs::LogChunk> r = impl_->local->Read(key, 0, 0);
    if (r.ok()) {
      sizes[key] = r->size;
    } else if (r.status().code() == Code::kNotFound) {
      sizes[key] = 0;
    } else {
      return r.status();
    }
  }
  return Json{{"sizes", sizes}}.dump();
}

Result<std::string> TaskLogs::Receive(const std::string& body, const Admit& admit) {
  ASSIGN_OR_RETURN(const Json j, api::ParseJson(body, "the request body"));
  if (!j.is_object() || !j.contains("chunks") || !j.at("chunks").is_array()) {
    return InvalidArgument("expected {\"epoch\": N, \"from\": region, \"chunks\": [...]}");
  }
  if (admit) {
    const Json& epoch = j.value("epoch", Json());
    if (!epoch.is_number_integer() || epoch.get<int64_t>() < 1) {
      return InvalidArgument("epoch: expected an integer >= 1");
    }
    const Json& from = j.value("from", Json());
    RETURN_IF_ERROR(admit(epoch.get<int64_t>(),
                          from.is_string() ? from.get<std::string>() : std::string("its peer")));
  }
  // Decoded in order; applied by a few threads, each taking whole logs (a log's chunks stay in
  // order on one thread), so a batch of a thousand logs is not applied one file at a time.
  const Json& list = j.at("chunks");
  std::vector<Chunk> chunks(list.size());
  std::vector<Json> results(list.size());
  std::vector<bool> valid(list.size(), false);
  for (size_t i = 0; i < list.size(); ++i) {
    const Json& c = list[i];
    auto has = [&c](const char* k, bool (Json::*is)() const noexcept) {
      return c.contains(k) && (c.at(k).*is)();
    };
    auto refuse = [&](const std::string& detail) {
      results[i] = {{"ok", false}, {"code", "invalid"}, {"detail", detail}, {"size", 0}};
    };
    if (!c.is_object() || !has("key", &Json::is_string) ||
        !has("offset", &Json::is_number_unsigned) || !has("checksum", &Json::is_string) ||
        !has("data", &Json::is_string)) {
      refuse("a chunk needs key, offset, checksum and data");
      continue;
    }
    Result<std::string> data = Base64Decode(c.at("data").get<std::string>());
    Result<uint32_t> sum = replication::ChecksumFromHex(c.at("checksum").get<std::string>());
    if (!data.ok() || !sum.ok()) {
      refuse("a chunk's data or checksum does not decode");
      continue;
    }
    chunks[i].key = c.at("key").get<std::string>();
    chunks[i].offset = c.at("offset").get<uint64_t>();
    chunks[i].data = std::move(data).value();
    chunks[i].checksum = *sum;
    valid[i] = true;
  }
  const size_t threads = list.size() < 64 ? 1 : kReceiveThreads;
  auto apply = [&](size_t part) {
    for (size_t i = 0; i < chunks.size(); ++i) {
      if (!valid[i] || std::hash<std::string>{}(chunks[i].key) % threads != part) continue;
      ApplyResult a = impl_->replicating->ApplyReplicated(chunks[i]);
      if (a.status.ok()) {
        results[i] = {{"ok", true}, {"size", a.receiver_size}};
      } else {
        results[i] = {{"ok", false},
                      {"code", a.gap()        ? "gap"
                               : a.conflict() ? "conflict"
                                              : "invalid"},
                      {"detail", a.status.message()},
                      {"size", a.receiver_size}};
      }
    }
  };
  std::vector<std::thread> helpers;
  for (size_t part = 1; part < threads; ++part) helpers.emplace_back(apply, part);
  apply(0);
  for (std::thread& t : helpers) t.join();
  return Json{{"results", std::move(results)}}.dump();
}

std::vector<LogSinkView> TaskLogs::Views() const {
  std::vector<LogSinkView> out;
  for (auto* s : {impl_->peer_shipper.get(), impl_->s3_shipper.get()}) {
    if (s != nullptr) out.push_back(ViewOf(s->stats()));
  }
  return out;
}

}  // namespace tandem::region
