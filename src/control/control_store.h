// The control plane's durable state: the pair (which region is active at which epoch, and the
// highest epoch the control plane has promised as a lease voter), the failover and failback
// operations with the last step each reached, and the event log (audit).
//
// One SQLite file in WAL mode with synchronous=FULL, so a commit survives power loss before the
// call returns: the failover state machine records a step before acting on it, and a restarted
// control plane resumes from what is here. Times are wall-clock milliseconds since the Unix
// epoch, given by the caller (nothing here reads a clock).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"

struct sqlite3;

namespace tandem::control {

struct PairRow {
  int64_t epoch = 1;
  std::string active;
  std::string standby;
  std::string original_primary;  // the region that was active when the pair was created
  int64_t promised = 1;          // the control plane voter's promised epoch
};

struct OperationRow {
  int64_t id = 0;
  std::string kind;  // "failover" | "failback"
  std::string mode;  // "planned" | "forced"
  std::string from, to;
  int64_t epoch_from = 0, epoch_to = 0;
  bool fall_through = false;  // planned: go on as forced when it cannot finish
  bool declare_dead = false;  // forced: the operator declared the old primary dead
  std::string state;          // "running" | "succeeded" | "rolled_back" | "failed"
  std::string step;           // the last step reached
  int64_t started_ms = 0, finished_ms = 0;
  std::string detail;
  // Who asked for it: the principal of the request ("user alice", "token ci"), or "control
  // plane" for an automatic failover. Kept with the operation, so a resumed one still names them.
  std::string started_by;
  int64_t loss_bytes = -1;    // -1: unknown
  double loss_seconds = -1;   // -1: unknown
  double rto_seconds = -1;    // -1: not promoted (yet)
};

struct EventRow {
  int64_t id = 0;
  int64_t at_ms = 0;
  std::string kind;
  std::string region;
  int64_t epoch = 0;
  int64_t operation = 0;  // 0: not part of an operation
  std::string message;
};

// Thread-safe: every method takes mu_ (one connection, one writer).
class ControlStore {
 public:
  // Opens (creating when absent) the database file at `path`; its directory must exist. Creates
  // the schema when new. An error names the path and why it cannot be opened.
  static Result<std::unique_ptr<ControlStore>> Open(const std::string& path);
  ~ControlStore();
  ControlStore(const ControlStore&) = delete;
  ControlStore& operator=(const ControlStore&) = delete;

  // Writes `initial` only when no pair is stored (first start); returns what is stored.
  Result<PairRow> InitPair(const PairRow& initial);
  // FailedPrecondition when the pair was never initialised.
  Result<PairRow> Pair();
  // Replaces the pair row. `promised` never goes down: a higher stored value is kept, since the
  // voter may have raised it since the caller read the row. FailedPrecondition when the pair was
  // never initialised or `p.epoch` is below the stored epoch.
  Status SetPair(const PairRow& p);
  // Raises the stored promised epoch (never lowers it); the control plane Voter's persist
  // callback. FailedPrecondition when the pair was never initialised.
  Status SetPromised(int64_t promised);

  // Stores `op` with a new id and state "running". At most one operation runs at a time:
  // FailedPrecondition naming the running one otherwise.
  Result<OperationRow> BeginOperation(OperationRow op);
  // Replaces every field of operation op.id; NotFound when absent.
  Status UpdateOperation(const OperationRow& op);
  Result<std::optional<OperationRow>> RunningOperation();
  // NotFound when absent.
  Result<OperationRow> Operation(int64_t id);
  // The newest `limit` operations, newest first.
  Result<std::vector<OperationRow>> Operations(int limit);

  // Stores `e` with a new id.
  Result<EventRow> AddEvent(EventRow e);
  // after_id <= 0: the newest `limit` events, newest first. after_id > 0: up to `limit` events
  // with id > after_id, oldest first (for following the log).
  Result<std::vector<EventRow>> Events(int limit, int64_t after_id);

  // The A records last published in the platform zone (host name -> IPv4 address).
  Result<std::map<std::string, std::string>> DnsRecords();
  // Replaces them all, in one transaction.
  Status SetDnsRecords(const std::map<std::string, std::string>& records);

 private:
  ControlStore(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}

  // REQUIRES: mu_ held.
  Result<std::optional<PairRow>> PairLocked();
  Result<std::optional<OperationRow>> RunningLocked();

  sqlite3* const db_;       // owned; closed by the destructor; used under mu_
  const std::string path_;  // constant after construction, for messages
  std::mutex mu_;
};

using ControlStorePtr = std::unique_ptr<ControlStore>;

}  // namespace tandem::control
