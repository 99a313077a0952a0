// What the region pair needs from the metadata database: the epoch a promoted region writes
// before it acts, the active region's heartbeat (a steady commit the replica times its lag by),
// and reconciliation after a promotion.
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "pg/conn.h"

namespace tandem::store {

class DrStore {
 public:
  explicit DrStore(pg::Pool* pool) : pool_(pool) {}

  // Records that `region` acts as primary at `epoch`. Refuses (FailedPrecondition) to go back
  // to a lower epoch than the database already holds.
  Status RecordEpoch(int64_t epoch, const std::string& region);
  // The epoch in the database; 0 before any region recorded one. Works on a replica.
  Result<int64_t> Epoch();
  // One small commit, timed by the caller: keeps the replica's last-replayed-commit timestamp
  // fresh so its lag in seconds means something.
  Status Heartbeat();

  // Task instances that were running in the lost region are ended as a lost worker's would be
  // (up_for_retry while tries remain, else failed; the try recorded in the history). After a
  // forced failover queued ones too: a claim that never replicated may have started their try
  // there, and the next try must never reuse its number. After a planned one, queued task
  // instances were never claimed (the old primary stopped claiming before its last replicated
  // write) and stay queued. Returns how many changed.
  Result<int64_t> Reconcile(bool forced);
  // Task instances running or queued, over every deployment.
  Result<int64_t> CountActiveTasks();
  // Task instances running, over every deployment (a drain waits for these only: queued ones
  // start nowhere while the region drains).
  Result<int64_t> CountRunningTasks();
  // The namespaces of the deployments that exist, in order: the control plane publishes their
  // host names (<namespace>.<zone>, <namespace>-exec.<zone>).
  Result<std::vector<std::string>> Namespaces();

 private:
  pg::Pool* const pool_;
};

}  // namespace tandem::store
