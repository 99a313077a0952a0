// Statements shared by the pipeline files of the store (deploy.cc, scheduling.cc,
// execution.cc). Internal to the store module.
#pragma once

#include <optional>
#include <string>

#include "base/status.h"
#include "pg/conn.h"

namespace tandem::store::sql {

struct NewRun {
  std::string deployment_id;
  std::string dag_id;
  std::string run_id;
  std::optional<std::string> logical_date;  // RFC 3339
  std::optional<std::string> data_interval_start, data_interval_end;
  std::string run_after;  // RFC 3339, or "now"
  std::string run_type;   // scheduled | manual
  std::string triggered_by;
  std::string conf = "{}";
  std::optional<std::string> note;
  std::string dag_version_id;
  std::string bundle_version;
};

// Inserts a queued run and its task instances (one per task of its DAG version, no state yet)
// in one statement. With `skip_conflicts`, a run whose run id or logical date is taken is
// silently not created (nullopt); otherwise that is AlreadyExists.
Result<std::optional<int64_t>> InsertRun(pg::Conn& c, const NewRun& run, bool skip_conflicts);

// The SET list that ends the current try of task instances as failed: up_for_retry while
// retries remain (Airflow: try_number <= max_tries), else failed. Used by every path that
// fails a try the worker did not report (a lost worker, a timeout, a failover's
// reconciliation); a worker's own report has the same rule in Execution::Finish.
inline constexpr const char* kFailTry =
    "state = CASE WHEN ti.try_number <= ti.max_tries THEN 'up_for_retry' ELSE 'failed' END, "
    "next_retry_at = CASE WHEN ti.try_number <= ti.max_tries "
    "THEN now() + make_interval(secs => ti.retry_delay_s) END, "
    "end_date = now(), worker_id = NULL";

// Added to kFailTry where the try was lost with its worker or its region rather than failed by
// its task: its retry is marked as recovered (see AdmissionOrder).
inline constexpr const char* kMarkRecovered =
    ", recovered_at = CASE WHEN ti.try_number <= ti.max_tries THEN now() END";

// The order in which task instances of alias `t` are admitted — queued within the limits, then
// claimed by workers: highest priority weight first (Airflow's rule); then fresh work before
// tries put back in the last minute because their worker or region was lost; then first come
// (`since`, the column that says when each was scheduled or queued). So a region that takes
// over 1,250 running tries in a failover starts what its users trigger at once, and the retries
// right after — never later than a minute's worth of fresh work.
inline std::string AdmissionOrder(const std::string& t, const std::string& since) {
  return "ORDER BY " + t + ".priority_weight DESC, coalesce(" + t +
         ".recovered_at > now() - interval '1 minute', false), " + t + "." + since + ", " + t +
         ".id";
}

// Columns of task_instances copied into task_instance_history when a try ends; the same list
// works as the SELECT list from a RETURNING row set.
inline constexpr const char* kHistoryColumns =
    "ti_id, deployment_id, run_pk, dag_id, run_id, task_id, state, try_number, max_tries, pool, "
    "pool_slots, priority_weight, operator, queued_when, scheduled_when, start_date, end_date, "
    "hostname, unixname, pid, dag_version_id";
inline constexpr const char* kHistorySelect =
    "id, deployment_id, run_pk, dag_id, run_id, task_id, state, try_number, max_tries, pool, "
    "pool_slots, priority_weight, operator, queued_when, scheduled_when, start_date, end_date, "
    "hostname, unixname, pid, dag_version_id";

// Copies the tries a CTE ended (RETURNING ti.*) into the history; an up_for_retry try is
// recorded as the failed try it was.
inline std::string RecordTries(const std::string& returning_cte) {
  return std::string("INSERT INTO task_instance_history (") + kHistoryColumns +
         ") SELECT id, deployment_id, run_pk, dag_id, run_id, task_id, "
         "CASE WHEN state = 'up_for_retry' THEN 'failed' ELSE state END, try_number, max_tries, "
         "pool, pool_slots, priority_weight, operator, queued_when, scheduled_when, start_date, "
         "end_date, hostname, unixname, pid, dag_version_id FROM " +
         returning_cte + " ON CONFLICT (ti_id, try_number) DO NOTHING";
}

}  // namespace tandem::store::sql
