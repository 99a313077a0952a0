// How the control plane talks to one region agent: the operations a failover is made of.
//
// The control plane never reaches into a region's database; it asks the region's agent, which
// fences, drains, promotes or rewinds its own PostgreSQL. HttpRegionLink (http_link.cc) speaks
// the region's internal DR API (/internal/v1/dr/..., docs/api.md); tests use fakes.
//
// Every call is bounded by the link's own timeout and returns Unavailable when the region
// cannot be reached, so a dead region never blocks the state machine.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"

namespace tandem::control {

// One replica connected to a primary, as pg_stat_replication shows it.
struct ReplicaView {
  std::string name;           // application_name: the replica's region name
  std::string state;          // streaming, catchup, backup, ...
  std::string sync_state;     // async, sync, potential, quorum
  uint64_t replay_lsn = 0;
  double replay_lag_s = 0;    // pg_stat_replication.replay_lag (0 when null)
};

// A region's own account of itself, sampled by the region at a steady rate.
struct RegionView {
  std::string name;
  // "active": holds (or is acquiring) the lease and acts as primary;
  // "standby": a streaming replica, starts nothing, refuses writes;
  // "stepped_down": a primary that stopped acting as one (planned failover in progress);
  // "rejoining": becoming a replica of the new primary (rewind or base backup under way);
  // "fenced": saw a higher epoch and stopped; waits to be told to rejoin.
  std::string role;
  int64_t epoch = 0;      // the epoch it acts under (the last one it was active or standby in)
  int64_t promised = 0;   // the highest epoch it has promised (durable)
  bool lease_held = false;
  double lease_remaining_s = 0;
  bool in_recovery = false;  // its PostgreSQL is a replica
  uint64_t current_lsn = 0;  // primary: pg_current_wal_lsn()
  uint64_t receive_lsn = 0;  // replica: pg_last_wal_receive_lsn()
  uint64_t replay_lsn = 0;   // replica: pg_last_wal_replay_lsn()
  // replica: seconds since the last replayed commit's timestamp when it is behind, else 0
  double replay_age_s = 0;
  bool streaming = false;    // replica: its WAL receiver is streaming
  std::vector<ReplicaView> replicas;  // primary: pg_stat_replication
  std::string sync_mode;              // "asynchronous" or "synchronous"
  bool sync_degraded = false;         // synchronous configured but running asynchronous
  double commit_ms = 0;               // median commit latency of its heartbeat writes
  // Seconds since the active peer last asked this region for a lease (standby only; -1 never).
  double peer_silent_s = -1;
  std::string resync_state;   // "", "rewinding", "base_backup", "streaming", "failed"
  std::string resync_detail;  // a sentence: what the last rejoin did or why it failed
  int64_t running_tasks = 0;  // task instances running or queued (active only)
  // Task logs this region wrote that the peer does not hold yet (active only).
  uint64_t log_chunks_behind = 0;
  uint64_t log_bytes_behind = 0;
  double log_oldest_s = 0;  // age of the oldest such chunk; 0 when none
  double log_lag_p50_s = 0;  // from a chunk's append to the peer's acknowledgement
  double log_lag_p99_s = 0;
  std::string log_error;     // the last failure to ship, while it lasts
  // Deployed images the peer's registry does not hold yet (active only), and why.
  int64_t images_unreplicated = 0;
  std::string images_error;
  // The namespaces of its deployments (active only; absent: not known), whose host names the
  // control plane publishes.
  std::optional<std::vector<std::string>> namespaces;
};

struct StepDownResult {
  uint64_t final_lsn = 0;   // WAL position after the last write it accepted
  int64_t still_running = 0;  // task instances that did not finish within the drain timeout
};

struct PromiseResult {
  int64_t promised = 0;
  // How long a lease this region granted to anyone else may still be valid, by its clock.
  Duration outstanding{};
};

struct PromoteResult {
  int64_t reconciled = 0;  // task instances moved to up_for_retry or failed
};

class RegionLink {
 public:
  virtual ~RegionLink() = default;
  virtual const std::string& name() const = 0;
  // GET /internal/v1/dr/state
  virtual Result<RegionView> State() = 0;
  // POST /internal/v1/dr/promise: raise `promised` to `epoch` durably; stop granting leases
  // for lower epochs.
  virtual Result<PromiseResult> Promise(int64_t epoch) = 0;
  // POST /internal/v1/dr/step-down: stop starting tasks and scheduling runs, let running tasks
  // finish for up to `drain`, refuse writes, give up its lease; answers the final WAL position.
  virtual Result<StepDownResult> StepDown(int64_t epoch, Duration drain) = 0;
  // POST /internal/v1/dr/resume: undo a step-down (rollback of a planned failover).
  virtual Status Resume(int64_t epoch) = 0;
  // POST /internal/v1/dr/promote: become the primary at `epoch` (pg_promote, epoch written to
  // the metadata database, reconcile, acquire a lease). Idempotent for the same epoch.
  // `forced`: the old primary did not step down, so claims it made may not have replicated
  // (reconciliation then retries queued task instances too, never reusing a try number).
  virtual Result<PromoteResult> Promote(int64_t epoch, bool forced) = 0;
  // POST /internal/v1/dr/rejoin: become a replica of `primary` at `epoch` (rewind or base
  // backup, in the background; progress shows in State().resync_state). Idempotent.
  virtual Status Rejoin(int64_t epoch, const std::string& primary) = 0;
};

}  // namespace tandem::control
