// The Execution API's statements: workers register and heartbeat, claim queued task instances
// in batches, and report how their tries ended.
//
// Every change is guarded by the task instance's id, its try number and its state, so a
// report for a try that was cleared, reaped or already reported changes nothing (it is
// "stale"), whatever order messages arrive in.
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"
#include "base/strong_id.h"
#include "pg/conn.h"

namespace tandem::store {

struct WorkerInfo {
  std::string id;  // uuid, new for every worker process
  std::string hostname;
  int slots = 0;
  std::optional<DeploymentId> deployment;  // serves one deployment only
  int heartbeat_ms = 1000;
};

struct ClaimedTask {
  std::string ti_id;
  DeploymentId deployment;
  int64_t run_pk = 0;
  std::string dag_id, run_id, task_id;
  int try_number = 0;
  std::optional<int> timeout_s;
  std::string bundle_version;
  // RFC 3339 UTC; "" when the run has none.
  std::string logical_date, data_interval_start, data_interval_end;
  std::string conf;  // the run's conf, JSON object text
  int64_t task_uid = 0;  // the deployment's number among task users (migration 10)
};

struct TryRef {
  std::string ti_id;
  int try_number = 0;
};

struct TryOutcome {
  TryRef ref;
  std::string state;                        // success | failed | skipped
  std::optional<std::string> return_value;  // JSON text, pushed as the `return_value` XCom
};

class Execution {
 public:
  explicit Execution(pg::Pool* pool) : pool_(pool) {}

  // Records the worker (or refreshes it) and that it is alive now.
  Status Heartbeat(const WorkerInfo& w);
  // Up to `n` queued task instances become running on worker `w`, highest priority first.
  Result<std::vector<ClaimedTask>> Claim(const WorkerInfo& w, int n);
  // The database's clock, in microseconds since the Unix epoch (what start_date is set from).
  Result<int64_t> NowMicros();
  // Of the tries a worker says it runs, those it must stop: no longer running on it at that
  // try (cleared, reaped, marked by a person). Running tries assigned to it that it did not
  // list, that it claimed more than `grace_ms` ago and — when the worker says which claims it
  // had seen (`claims_through_us`, a claim answer's NowMicros) — no later than that, are ended
  // as failed (it lost them). A try handed out by a claim the worker had not seen yet is not
  // judged, however long the claim took to reach it.
  Result<std::vector<std::string>> Reconcile(const WorkerInfo& w, const std::vector<TryRef>& held,
                                             int grace_ms,
                                             std::optional<int64_t> claims_through_us);
  // Per try, whether it is running now at that try number: a task token is good for its try's
  // log only while it is.
  Result<std::vector<bool>> AreRunning(const std::vector<TryRef>& tries);
  // Ends tries; returns, per outcome, whether it applied (false: stale). A failed try goes to
  // up_for_retry while retries remain. Every ended try is recorded in the history.
  Result<std::vector<bool>> Finish(const std::string& worker_id,
                                   const std::vector<TryOutcome>& outcomes);

  // What rendering a claimed task reads that the store module does not already serve:
  // the XComs of a run, (task_id, key) -> JSON text.
  Result<std::map<std::pair<std::string, std::string>, std::string>> RunXComs(int64_t run_pk);

 private:
  pg::Pool* const pool_;
};

}  // namespace tandem::store
