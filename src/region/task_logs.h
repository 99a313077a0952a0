// A region's task logs: where they are written, and how they reach the peer region and the
// object store.
//
// Every log a task writes here, and every chunk received from the peer, lands first in the
// local directory <state_dir>/logs and is recorded in the chunk journal <state_dir>/log-journal
// (replication::ReplicatingLogStore). Two shippers read the journal:
//   - "peer": this region's own chunks to the peer region's internal API, while this region is
//     the active one (paused on a standby; after a forced failover the returning region discards
//     its backlog, like its database's un-replicated writes);
//   - "s3": every chunk, own and received, to the S3-compatible object store when
//     task_logs.backend is s3, in both roles.
// Reads come from the local directory; with an object store, a log the directory lacks is read
// from the store. When a sink is unreachable, chunks wait on local disk up to
// task_logs.spool_bound_bytes; beyond it appends fail with a message naming the sink.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/metrics.h"
#include "base/status.h"
#include "region/config.h"
#include "tls/certificates.h"

namespace tandem::logs {
class LogStore;
}

namespace tandem::region {

// One shipper's state, for status and metrics.
struct LogSinkView {
  std::string sink;  // "peer" or "s3"
  bool paused = false;
  uint64_t chunks_behind = 0;
  uint64_t bytes_behind = 0;
  double oldest_unreplicated_s = 0;  // age of the oldest chunk the sink lacks; 0 when none
  double lag_p50_s = 0;              // from append to the sink's acknowledgement
  double lag_p99_s = 0;
  uint64_t lag_samples = 0;
  uint64_t bytes_shipped = 0;
  uint64_t batches_sent = 0;  // requests to the sink
  uint64_t chunks_sent = 0;   // chunks in them
  std::string last_error;     // empty when the last attempt succeeded
};

class TaskLogs {
 public:
  // The peer region's internal API, for the "peer" shipper. `epoch` is read at each send: the
  // receiver refuses chunks from an epoch older than its own.
  struct Peer {
    std::string url;  // "https://address:port" (http without TLS)
    std::string credential;
    std::string source_address;
    std::function<int64_t()> epoch;
    tls::Trust trust;  // what the peer's certificate must chain to
  };

  static Result<std::unique_ptr<TaskLogs>> Open(const RegionConfig& cfg, std::optional<Peer> peer,
                                                MetricsRegistry* metrics);
  ~TaskLogs();
  TaskLogs(const TaskLogs&) = delete;
  TaskLogs& operator=(const TaskLogs&) = delete;

  void Stop();

  // What the API and the dispatcher write and read logs through.
  logs::LogStore* store() const;

  // Ship to the peer (this region is active) or not (standby, stepped down, fenced).
  void ShipToPeer(bool ship);
  // Waits until the peer holds every chunk written so far, or `timeout` passes; true when it
  // does. A planned failover calls it after the last task write.
  bool FlushToPeer(Duration timeout);
  // Drops the chunks the peer never received (a region rejoining after a forced failover):
  // each log they belong to is cut to what the peer holds of it (asked with POST
  // /internal/v1/logs/sizes). Returns a sentence saying how much, for the rejoin's event.
  Result<std::string> DiscardPeerBacklog();
  // The body of POST /internal/v1/logs/sizes, {"keys": [...]}: {"sizes": {key: bytes}} of the
  // local copies (0 for a log it does not have).
  Result<std::string> Sizes(const std::string& body);

  // The body of POST /internal/v1/logs/chunks (see task_logs.cc for its shape), applied to the
  // local store as received chunks; answers one result per chunk. `admit` is asked first with
  // the batch's epoch and sender; an error from it refuses the whole batch.
  using Admit = std::function<Status(int64_t epoch, const std::string& from)>;
  Result<std::string> Receive(const std::string& body, const Admit& admit = nullptr);

  std::vector<LogSinkView> Views() const;

 private:
  struct Impl;
  explicit TaskLogs(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::region
