#include "store/execution.h"

#include <nlohmann/json.hpp>

#include "store/pipeline_sql.h"
#include "store/sql.h"

namespace tandem::store {
namespace {

using Json = nlohmann::json;
using pg::Conn;
using pg::Param;
using pg::Rows;

Param Scope(const WorkerInfo& w) {
  return w.deployment ? Param(w.deployment->value()) : std::nullopt;
}

std::string TsOrEmpty(const std::string& col) { return "coalesce(" + sql::Ts(col) + ", '')"; }

}  // namespace

Status Execution::Heartbeat(const WorkerInfo& w) {
  ASSIGN_OR_RETURN(auto c, pool_->Acquire());
  return c
      ->Exec(
          "INSERT INTO workers (id, hostname, slots, deployment_id, heartbeat_ms) VALUES "
          "($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET hostname = "
          "EXCLUDED.hostname, slots = EXCLUDED.slots, heartbeat_ms = "
          "EXCLUDED.heartbeat_ms, last_heartbeat = now()",
          {w.id, w.hostname, std::to_string(w.slots), Scope(w), std::to_string(w.heartbeat_ms)})
      .status();
}

Result<std::vector<ClaimedTask>> Execution::Claim(const WorkerInfo& w, int n) {
  if (n <= 0) return std::vector<ClaimedTask>{};
  ASSIGN_OR_RETURN(auto c, pool_->Acquire());
  // The worker row is written in the same statement, so a claimed task always has a worker
  // whose heartbeat the scheduler can judge.
  ASSIGN_OR_RETURN(
      Rows r,
      c->Exec("WITH w AS (INSERT INTO workers (id, hostname, slots, deployment_id, heartbeat_ms) "
              "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET last_heartbeat = "
              "now() RETURNING id), "
              "pick AS (SELECT ti.id FROM task_instances ti JOIN deployments dp ON dp.id = "
              "ti.deployment_id AND dp.deleted_at IS NULL WHERE ti.state = 'queued' AND ($4::uuid "
              "IS NULL OR ti.deployment_id = $4::uuid) " +
                  sql::AdmissionOrder("ti", "queued_when") +
                  " LIMIT $6 FOR UPDATE OF ti SKIP LOCKED), "
                  "up AS (UPDATE task_instances ti SET state = 'running', worker_id = (SELECT id "
                  "FROM w), start_date = now(), end_date = NULL, hostname = $2, recovered_at = "
                  "NULL FROM pick WHERE ti.id = "
                  "pick.id RETURNING ti.id, ti.deployment_id, ti.run_pk, ti.dag_id, ti.run_id, "
                  "ti.task_id, ti.try_number, ti.timeout_s) "
                  "SELECT up.id, up.deployment_id, up.run_pk, up.dag_id, up.run_id, up.task_id, "
                  "up.try_number, up.timeout_s, r.bundle_version, " +
                  // A run without a logical date (a manual one) renders its dates as the
                  // moment it was triggered, as Airflow 2 did.
                  TsOrEmpty("coalesce(r.logical_date, r.run_after)") + ", " +
                  TsOrEmpty("coalesce(r.data_interval_start, r.run_after)") + ", " +
                  TsOrEmpty("coalesce(r.data_interval_end, r.run_after)") +
                  ", r.conf::text, d.task_uid FROM up JOIN dag_runs r ON r.id = up.run_pk "
                  "JOIN deployments d ON d.id = up.deployment_id",
              {w.id, w.hostname, std::to_string(w.slots), Scope(w), std::to_string(w.heartbeat_ms),
               std::to_string(n)}));
  std::vector<ClaimedTask> out(r.size());
  for (int i = 0; i < r.size(); ++i) {
    ClaimedTask& t = out[i];
    t.ti_id = r.Text(i, 0);
    t.deployment = DeploymentId(r.Text(i, 1));
    t.run_pk = r.Int(i, 2);
    t.dag_id = r.Text(i, 3);
    t.run_id = r.Text(i, 4);
    t.task_id = r.Text(i, 5);
    t.try_number = static_cast<int>(r.Int(i, 6));
    if (!r.IsNull(i, 7)) t.timeout_s = static_cast<int>(r.Int(i, 7));
    t.bundle_version = r.Text(i, 8);
    t.logical_date = r.Text(i, 9);
    t.data_interval_start = r.Text(i, 10);
    t.data_interval_end = r.Text(i, 11);
    t.conf = r.Text(i, 12);
    t.task_uid = r.Int(i, 13);
  }
  return out;
}

Result<int64_t> Execution::NowMicros() {
  ASSIGN_OR_RETURN(auto c, pool_->Acquire());
  // Rounded down, so that every try claimed before this statement has a start_date at or
  // before it.
  ASSIGN_OR_RETURN(Rows r, c->Exec("SELECT floor(extract(epoch FROM now()) * 1000000)::bigint"));
  return r.Int(0, 0);
}

Result<std::vector<std::string>> Execution::Reconcile(const WorkerInfo& w,
                                                      const std::vector<TryRef>& held, int grace_ms,
                                                      std::optional<int64_t> claims_through_us) {
  Json tries = Json::array();
  for (const TryRef& t : held) tries.push_back({{"id", t.ti_id}, {"try", t.try_number}});
  std::vector<std::string> stop;
  Status s = pool_->WithTx([&](Conn& c) -> Status {
    RETURN_IF_ERROR(
        c.Exec("UPDATE workers SET last_heartbeat = now() WHERE id = $1", {w.id}).status());
    ASSIGN_OR_RETURN(
        Rows gone,
        c.Exec("SELECT x.id::text FROM jsonb_to_recordset($2::jsonb) AS x(id uuid, try int) "
               "WHERE NOT EXISTS (SELECT 1 FROM task_instances ti WHERE ti.id = x.id AND "
               "ti.try_number = x.try AND ti.state = 'running' AND ti.worker_id = $1)",
               {w.id, tries.dump()}));
    for (int i = 0; i < gone.size(); ++i) stop.push_back(gone.Text(i, 0));
    return c
        .Exec(std::string("WITH lost AS (UPDATE task_instances ti SET ") + sql::kFailTry +
                  sql::kMarkRecovered +
                  " WHERE ti.state = 'running' AND ti.worker_id = $1 AND ti.start_date < now() - "
                  "$3 * interval '1 millisecond' AND ($4::bigint IS NULL OR ti.start_date <= "
                  "timestamptz 'epoch' + $4::bigint * interval '1 microsecond') AND ti.id NOT IN "
                  "(SELECT x.id FROM "
                  "jsonb_to_recordset($2::jsonb) AS x(id uuid, try int)) RETURNING ti.*) "
                  "INSERT INTO task_instance_history (" +
                  sql::kHistoryColumns +
                  ") SELECT id, deployment_id, run_pk, dag_id, run_id, task_id, 'failed', "
                  "try_number, max_tries, pool, pool_slots, priority_weight, operator, "
                  "queued_when, scheduled_when, start_date, end_date, hostname, unixname, pid, "
                  "dag_version_id FROM lost ON CONFLICT (ti_id, try_number) DO NOTHING",
              {w.id, tries.dump(), std::to_string(grace_ms),
               claims_through_us ? pg::Param(std::to_string(*claims_through_us)) : std::nullopt})
        .status();
  });
  if (!s.ok()) return s;
  return stop;
}

Result<std::vector<bool>> Execution::AreRunning(const std::vector<TryRef>& tries) {
  Json rows = Json::array();
  for (size_t i = 0; i < tries.size(); ++i) {
    rows.push_back({{"i", i}, {"id", tries[i].ti_id}, {"try", tries[i].try_number}});
  }
  std::vector<bool> out(tries.size(), false);
  if (tries.empty()) return out;
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  ASSIGN_OR_RETURN(Rows r, c->Exec("SELECT x.i FROM jsonb_to_recordset($1::jsonb) AS x(i int, id "
                                   "uuid, try int) JOIN task_instances ti ON ti.id = x.id AND "
                                   "ti.try_number = x.try AND ti.state = 'running'",
                                   {rows.dump()}));
  for (int k = 0; k < r.size(); ++k) out[static_cast<size_t>(r.Int(k, 0))] = true;
  return out;
}

Result<std::vector<bool>> Execution::Finish(const std::string& worker_id,
                                            const std::vector<TryOutcome>& outcomes) {
  Json rows = Json::array();
  for (const TryOutcome& o : outcomes) {
    rows.push_back({{"id", o.ref.ti_id},
                    {"try", o.ref.try_number},
                    {"state", o.state},
                    {"xcom", o.return_value ? Json(*o.return_value) : Json()}});
  }
  std::vector<bool> applied(outcomes.size(), false);
  Status s = pool_->WithTx([&](Conn& c) -> Status {
    // One statement ends every try: success and skipped as they are, failed through the retry
    // rule; the history records each try as it ended, and success pushes the return value.
    ASSIGN_OR_RETURN(
        Rows r,
        c.Exec(std::string("WITH x AS (SELECT * FROM jsonb_to_recordset($2::jsonb) AS x(id "
                           "uuid, try int, state text, xcom text)), "
                           "done AS (UPDATE task_instances ti SET state = CASE WHEN x.state = "
                           "'failed' THEN (CASE WHEN ti.try_number <= ti.max_tries THEN "
                           "'up_for_retry' ELSE 'failed' END) ELSE x.state END, next_retry_at = "
                           "CASE WHEN x.state = 'failed' AND ti.try_number <= ti.max_tries THEN "
                           "now() + make_interval(secs => ti.retry_delay_s) END, end_date = "
                           "now(), worker_id = NULL FROM x WHERE ti.id = x.id AND ti.try_number "
                           "= x.try AND ti.state = 'running' AND ti.worker_id = $1 RETURNING "
                           "ti.*, x.xcom), "
                           "hist AS (INSERT INTO task_instance_history (") +
                   sql::kHistoryColumns +
                   ") SELECT id, deployment_id, run_pk, dag_id, run_id, task_id, CASE WHEN state "
                   "= 'up_for_retry' THEN 'failed' ELSE state END, try_number, max_tries, pool, "
                   "pool_slots, priority_weight, operator, queued_when, scheduled_when, "
                   "start_date, end_date, hostname, unixname, pid, dag_version_id FROM done ON "
                   "CONFLICT (ti_id, try_number) DO NOTHING), "
                   "xc AS (INSERT INTO xcoms (deployment_id, run_pk, dag_id, run_id, task_id, "
                   "key, value) SELECT deployment_id, run_pk, dag_id, run_id, task_id, "
                   "'return_value', xcom::jsonb FROM done WHERE state = 'success' AND xcom IS "
                   "NOT NULL ON CONFLICT (run_pk, task_id, key) DO UPDATE SET value = "
                   "EXCLUDED.value, created_at = now()) SELECT id::text FROM done",
               {worker_id, rows.dump()}));
    std::set<std::string> done;
    for (int i = 0; i < r.size(); ++i) done.insert(r.Text(i, 0));
    for (size_t i = 0; i < outcomes.size(); ++i) applied[i] = done.count(outcomes[i].ref.ti_id);
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return applied;
}

Result<std::map<std::pair<std::string, std::string>, std::string>> Execution::RunXComs(
    int64_t run_pk) {
  ASSIGN_OR_RETURN(auto c, pool_->Acquire());
  ASSIGN_OR_RETURN(Rows r, c->Exec("SELECT task_id, key, value::text FROM xcoms WHERE run_pk = $1",
                                   {std::to_string(run_pk)}));
  std::map<std::pair<std::string, std::string>, std::string> out;
  for (int i = 0; i < r.size(); ++i) out[{r.Text(i, 0), r.Text(i, 1)}] = r.Text(i, 2);
  return out;
}

}  // namespace tandem::store
