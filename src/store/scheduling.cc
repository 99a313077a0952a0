#include "store/scheduling.h"

#include <nlohmann/json.hpp>

#include "store/pipeline_sql.h"
#include "store/sql.h"

namespace tandem::store {
namespace {

using Json = nlohmann::json;
using pg::Conn;
using pg::Rows;

std::optional<dag::TimePoint> OptTime(const Rows& r, int i, int col) {
  if (r.IsNull(i, col)) return std::nullopt;
  return dag::TimePoint(std::chrono::seconds(r.Int(i, col)));
}

std::optional<dag::Interval> OptInterval(const Rows& r, int i, int col) {
  std::optional<dag::TimePoint> a = OptTime(r, i, col), b = OptTime(r, i, col + 1);
  if (!a || !b) return std::nullopt;
  return dag::Interval{*a, *b};
}

std::string Epoch(const std::string& col) { return "extract(epoch from " + col + ")::bigint"; }

// Every statement here works on live deployments only.
constexpr const char* kLive =
    "JOIN deployments dp ON dp.id = g.deployment_id AND "
    "dp.deleted_at IS NULL ";

// What the history keeps of a try that just ended: the state the try ended in.

}  // namespace

Result<std::vector<DueDag>> Scheduling::DueDags(dag::TimePoint now) {
  ASSIGN_OR_RETURN(auto c, pool_->Acquire());
  std::string now_s = std::to_string(now.time_since_epoch().count());
  ASSIGN_OR_RETURN(
      Rows r,
      c->Exec("SELECT g.deployment_id, g.dag_id, g.timetable_summary, " + Epoch("g.start_date") +
                  ", " + Epoch("g.end_date") +
                  ", g.catchup, g.max_active_runs - "
                  "(SELECT count(*) FROM dag_runs x WHERE x.deployment_id = g.deployment_id AND "
                  "x.dag_id = g.dag_id AND x.state IN ('queued', 'running')), " +
                  Epoch("g.next_interval_start") + ", " + Epoch("g.next_interval_end") + ", " +
                  Epoch("l.data_interval_start") + ", " + Epoch("l.data_interval_end") +
                  ", v.id, v.bundle_version FROM dags g " + kLive +
                  "JOIN LATERAL (SELECT id, bundle_version FROM dag_versions WHERE "
                  "deployment_id = g.deployment_id AND dag_id = g.dag_id ORDER BY "
                  "version_number DESC LIMIT 1) v ON true "
                  "LEFT JOIN LATERAL (SELECT data_interval_start, data_interval_end FROM "
                  "dag_runs WHERE deployment_id = g.deployment_id AND dag_id = g.dag_id AND "
                  "run_type = 'scheduled' ORDER BY logical_date DESC LIMIT 1) l ON true "
                  "WHERE NOT g.is_paused AND NOT g.is_stale AND g.timetable_summary IS NOT NULL "
                  "AND (g.next_interval_end IS NULL OR g.next_interval_end <= to_timestamp($1))",
              {now_s}));
  std::vector<DueDag> out;
  for (int i = 0; i < r.size(); ++i) {
    DueDag d;
    d.deployment = DeploymentId(r.Text(i, 0));
    d.dag_id = r.Text(i, 1);
    d.timetable = r.Text(i, 2);
    d.start_date = OptTime(r, i, 3);
    d.end_date = OptTime(r, i, 4);
    d.catchup = r.Bool(i, 5);
    d.room = static_cast<int>(r.Int(i, 6));
    d.next = OptInterval(r, i, 7);
    d.last = OptInterval(r, i, 9);
    d.dag_version_id = r.Text(i, 11);
    d.bundle_version = r.Text(i, 12);
    out.push_back(std::move(d));
  }
  return out;
}

Result<int> Scheduling::CreateRuns(const std::vector<ScheduledRun>& runs) {
  int created = 0;
  Status s = pool_->WithTx([&](Conn& c) -> Status {
    for (const ScheduledRun& run : runs) {
      sql::NewRun n;
      n.deployment_id = run.deployment.value();
      n.dag_id = run.dag_id;
      std::string start = dag::FormatTime(run.interval.start);
      n.run_id = "scheduled__" + start;
      n.logical_date = start;
      n.data_interval_start = start;
      n.data_interval_end = dag::FormatTime(run.interval.end);
      n.run_after = *n.data_interval_end;
      n.run_type = "scheduled";
      n.triggered_by = "timetable";
      n.dag_version_id = run.dag_version_id;
      n.bundle_version = run.bundle_version;
      ASSIGN_OR_RETURN(std::optional<int64_t> pk, sql::InsertRun(c, n, /*skip_conflicts=*/true));
      created += pk ? 1 : 0;
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return created;
}

Status Scheduling::SetNextInterval(const DeploymentId& d, const std::string& dag_id,
                                   const std::optional<dag::Interval>& next) {
  ASSIGN_OR_RETURN(auto c, pool_->Acquire());
  // "Never again" is stored as the far future, so the DAG stops being due.
  auto secs = [](dag::TimePoint t) { return std::to_string(t.time_since_epoch().count()); };
  std::string a = next ? secs(next->start) : "253402300799";  // 9999-12-31T23:59:59Z
  std::string b = next ? secs(next->end) : "253402300799";
  return c
      ->Exec(
          "UPDATE dags SET next_interval_start = to_timestamp($3), next_interval_end = "
          "to_timestamp($4) WHERE deployment_id = $1 AND dag_id = $2",
          {d.value(), dag_id, a, b})
      .status();
}

Result<int> Scheduling::StartRuns() {
  ASSIGN_OR_RETURN(auto c, pool_->Acquire());
  ASSIGN_OR_RETURN(
      Rows r,
      c->Exec(std::string("WITH ranked AS (SELECT r.id, row_number() OVER (PARTITION BY "
                          "r.deployment_id, r.dag_id ORDER BY r.run_after, r.id) AS rn, "
                          "g.max_active_runs - (SELECT count(*) FROM dag_runs x WHERE "
                          "x.deployment_id = r.deployment_id AND x.dag_id = r.dag_id AND x.state "
                          "= 'running') AS room FROM dag_runs r JOIN dags g ON g.deployment_id = "
                          "r.deployment_id AND g.dag_id = r.dag_id ") +
              kLive +
              "WHERE r.state = 'queued' AND NOT g.is_paused AND r.run_after <= now()) "
              "UPDATE dag_runs SET state = 'running', start_date = now(), end_date = NULL, "
              "last_scheduling_decision = now() FROM ranked WHERE dag_runs.id = ranked.id AND "
              "ranked.rn <= ranked.room AND dag_runs.state = 'queued' RETURNING dag_runs.id"));
  return r.size();
}

Result<std::vector<PendingTask>> Scheduling::PendingTasks() {
  ASSIGN_OR_RETURN(auto c, pool_->Acquire());
  ASSIGN_OR_RETURN(
      Rows r,
      c->Exec(
          std::string("SELECT ti.id, t.trigger_rule, t.operator, count(u.id), "
                      "count(u.id) FILTER (WHERE u.state = 'success'), "
                      "count(u.id) FILTER (WHERE u.state = 'failed'), "
                      "count(u.id) FILTER (WHERE u.state = 'upstream_failed'), "
                      "count(u.id) FILTER (WHERE u.state = 'skipped'), "
                      "count(u.id) FILTER (WHERE u.state IN ('success', 'failed', "
                      "'upstream_failed', 'skipped')) "
                      "FROM task_instances ti JOIN dag_runs r ON r.id = ti.run_pk AND r.state = "
                      "'running' JOIN dags g ON g.deployment_id = r.deployment_id AND g.dag_id = "
                      "r.dag_id AND NOT g.is_paused ") +
          kLive +
          "JOIN dag_version_tasks t ON t.dag_version_id = ti.dag_version_id AND t.task_id = "
          "ti.task_id LEFT JOIN task_instances u ON u.run_pk = ti.run_pk AND u.task_id = "
          "ANY (t.upstream) AND u.state IS DISTINCT FROM 'removed' "
          "WHERE ti.state IS NULL GROUP BY ti.id, t.trigger_rule, t.operator"));
  std::vector<PendingTask> out(r.size());
  for (int i = 0; i < r.size(); ++i) {
    PendingTask& p = out[i];
    p.ti_id = r.Text(i, 0);
    p.trigger_rule = r.Text(i, 1);
    p.operator_name = r.Text(i, 2);
    p.upstream = static_cast<int>(r.Int(i, 3));
    p.success = static_cast<int>(r.Int(i, 4));
    p.failed = static_cast<int>(r.Int(i, 5));
    p.upstream_failed = static_cast<int>(r.Int(i, 6));
    p.skipped = static_cast<int>(r.Int(i, 7));
    p.done = static_cast<int>(r.Int(i, 8));
  }
  return out;
}

Result<int> Scheduling::Decide(const std::vector<Decision>& decisions) {
  if (decisions.empty()) return 0;
  Json rows = Json::array();
  for (const Decision& d : decisions) rows.push_back({{"id", d.ti_id}, {"state", d.state}});
  ASSIGN_OR_RETURN(auto c, pool_->Acquire());
  ASSIGN_OR_RETURN(
      Rows r,
      c->Exec("UPDATE task_instances ti SET state = x.state, try_number = CASE WHEN x.state = "
              "'success' THEN ti.try_number + 1 ELSE ti.try_number END, "
              "scheduled_when = CASE WHEN x.state = 'scheduled' THEN now() END, "
              "start_date = CASE WHEN x.state <> 'scheduled' THEN now() END, "
              "end_date = CASE WHEN x.state <> 'scheduled' THEN now() END "
              "FROM jsonb_to_recordset($1::jsonb) AS x(id uuid, state text) "
              "WHERE ti.id = x.id AND ti.state IS NULL RETURNING ti.id",
              {rows.dump()}));
  return r.size();
}

Result<int> Scheduling::RetryDue() {
  ASSIGN_OR_RETURN(auto c, pool_->Acquire());
  ASSIGN_OR_RETURN(Rows r, c->Exec("UPDATE task_instances SET state = 'scheduled', "
                                   "scheduled_when = now() WHERE state = 'up_for_retry' AND "
                                   "next_retry_at <= now() RETURNING id"));
  return r.size();
}

Result<int> Scheduling::QueueTasks() {
  ASSIGN_OR_RETURN(auto c, pool_->Acquire());
  // The three limits filter in turn — the run's max_active_tasks, then the pool's open slots,
  // then the deployment's worker slots — each ranking only what passed the one before, highest
  // priority weight first. So a full run never holds back another run's tasks, and no limit is
  // ever exceeded.
  auto order = [](const std::string& t) { return sql::AdmissionOrder(t, "scheduled_when"); };
  ASSIGN_OR_RETURN(
      Rows r,
      c->Exec(std::string(
                  "WITH busy AS (SELECT deployment_id, pool, run_pk, pool_slots FROM "
                  "task_instances WHERE state IN ('queued', 'running')), "
                  "pool_busy AS (SELECT deployment_id, pool, sum(pool_slots) AS n FROM busy "
                  "GROUP BY 1, 2), "
                  "run_busy AS (SELECT run_pk, count(*) AS n FROM busy GROUP BY 1), "
                  "dep_busy AS (SELECT deployment_id, count(*) AS n FROM busy GROUP BY 1), "
                  "c1 AS (SELECT ti.id, ti.deployment_id, ti.pool, ti.run_pk, ti.priority_weight, "
                  "ti.recovered_at, ti.scheduled_when, g.max_active_tasks, row_number() OVER "
                  "(PARTITION BY "
                  "ti.run_pk ") +
              order("ti") +
              ") AS run_rank FROM task_instances ti JOIN dag_runs r ON r.id = ti.run_pk AND "
              "r.state = 'running' JOIN dags g ON g.deployment_id = r.deployment_id AND "
              "g.dag_id = r.dag_id AND NOT g.is_paused " +
              kLive +
              "WHERE ti.state = 'scheduled'), "
              "c2 AS (SELECT c1.*, row_number() OVER (PARTITION BY c1.deployment_id, c1.pool " +
              order("c1") +
              ") AS pool_rank FROM c1 LEFT JOIN run_busy rb ON rb.run_pk = c1.run_pk WHERE "
              "c1.run_rank <= c1.max_active_tasks - coalesce(rb.n, 0)), "
              "c3 AS (SELECT c2.*, row_number() OVER (PARTITION BY c2.deployment_id " +
              order("c2") +
              ") AS dep_rank FROM c2 JOIN pools p ON p.deployment_id = c2.deployment_id AND "
              "p.name = c2.pool LEFT JOIN pool_busy pb ON pb.deployment_id = c2.deployment_id "
              "AND pb.pool = c2.pool WHERE p.slots < 0 OR c2.pool_rank <= p.slots - "
              "coalesce(pb.n, 0)), "
              "ok AS (SELECT c3.id FROM c3 JOIN deployments d ON d.id = c3.deployment_id LEFT "
              "JOIN dep_busy db ON db.deployment_id = c3.deployment_id WHERE c3.dep_rank <= "
              "d.worker_slots - coalesce(db.n, 0)) "
              "UPDATE task_instances ti SET state = 'queued', queued_when = now(), try_number = "
              "ti.try_number + 1, start_date = NULL, end_date = NULL, hostname = '', pid = NULL, "
              "next_retry_at = NULL FROM ok WHERE ti.id = ok.id AND ti.state = 'scheduled' "
              "RETURNING ti.id"));
  return r.size();
}

Result<int> Scheduling::FinishRuns() {
  ASSIGN_OR_RETURN(auto c, pool_->Acquire());
  ASSIGN_OR_RETURN(
      Rows r,
      c->Exec("UPDATE dag_runs r SET state = CASE WHEN EXISTS (SELECT 1 FROM task_instances ti "
              "JOIN dag_version_tasks t ON t.dag_version_id = ti.dag_version_id AND t.task_id = "
              "ti.task_id WHERE ti.run_pk = r.id AND t.is_leaf AND ti.state IN ('failed', "
              "'upstream_failed')) THEN 'failed' ELSE 'success' END, end_date = now(), "
              "last_scheduling_decision = now() "
              "WHERE r.state = 'running' AND NOT EXISTS (SELECT 1 FROM task_instances ti WHERE "
              "ti.run_pk = r.id AND (ti.state IS NULL OR ti.state IN ('scheduled', 'queued', "
              "'running', 'up_for_retry'))) RETURNING r.id"));
  return r.size();
}

Result<int> Scheduling::ReapLost(int grace_seconds) {
  ASSIGN_OR_RETURN(auto c, pool_->Acquire());
  ASSIGN_OR_RETURN(
      Rows r,
      c->Exec(std::string("WITH lost AS (UPDATE task_instances ti SET ") + sql::kFailTry +
                  // A try whose worker went quiet is recovered; one past its timeout failed.
                  ", recovered_at = CASE WHEN z.worker_lost AND ti.try_number <= ti.max_tries "
                  "THEN now() END FROM (SELECT t.id, (w.id IS NULL OR w.last_heartbeat < now() "
                  "- 3 * w.heartbeat_ms * interval '1 millisecond') AS worker_lost FROM "
                  "task_instances t LEFT JOIN workers w ON w.id = t.worker_id WHERE t.state = "
                  "'running' AND (w.id IS NULL OR w.last_heartbeat < now() - 3 * w.heartbeat_ms "
                  "* interval '1 millisecond' OR (t.timeout_s IS NOT NULL AND t.start_date < "
                  "now() - make_interval(secs => t.timeout_s + $1))) FOR UPDATE OF t SKIP "
                  "LOCKED) AS z WHERE ti.id = z.id AND ti.state = 'running' RETURNING ti.*), "
                  "rec AS (" +
                  sql::RecordTries("lost") + ") SELECT count(*) FROM lost",
              {std::to_string(grace_seconds)}));
  return static_cast<int>(r.Int(0, 0));
}

}  // namespace tandem::store
