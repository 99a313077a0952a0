// Deploying a bundle and triggering runs: the writes that create DAGs, DAG versions and runs.
#include <nlohmann/json.hpp>
#include <set>

#include "crypto/token.h"
#include "dag/bundle.h"
#include "store/pipeline_sql.h"
#include "store/pipelines.h"
#include "store/sql.h"

namespace tandem::store {
namespace {

using Json = nlohmann::json;
using pg::Conn;
using pg::Param;
using pg::Rows;

Status LockLiveDeployment(Conn& c, const DeploymentId& d) {
  ASSIGN_OR_RETURN(Rows r, c.Exec("SELECT 1 FROM deployments WHERE id = $1 AND deleted_at IS "
                                  "NULL FOR SHARE",
                                  {d.value()}));
  if (r.size() == 0) return NotFound("deployment " + d.value() + " does not exist");
  return Status::Ok();
}

Param OptTime(const std::optional<dag::TimePoint>& t) {
  return t ? Param(dag::FormatTime(*t)) : std::nullopt;
}

// 1 + the number of tasks downstream of each task, transitively: Airflow's default
// ("downstream") priority weight, so long chains start first.
std::map<std::string, int> PriorityWeights(const dag::DagSpec& dag) {
  std::map<std::string, int> weight;
  std::map<std::string, std::set<std::string>> below;
  // Tasks are in topological order, so walking backwards sees every downstream task first.
  for (auto it = dag.tasks.rbegin(); it != dag.tasks.rend(); ++it) {
    std::set<std::string>& mine = below[it->task_id];
    for (const std::string& down : dag.downstream(it->task_id)) {
      mine.insert(down);
      mine.insert(below[down].begin(), below[down].end());
    }
    weight[it->task_id] = 1 + static_cast<int>(mine.size());
  }
  return weight;
}

Json TaskRows(const dag::DagSpec& dag) {
  std::map<std::string, int> weights = PriorityWeights(dag);
  Json rows = Json::array();
  int ord = 0;
  for (const dag::TaskSpec& t : dag.tasks) {
    Json row = {{"task_id", t.task_id},
                {"ord", ord++},
                {"operator", std::string(dag::OperatorName(t.op))},
                {"trigger_rule", std::string(dag::TriggerRuleName(t.trigger_rule))},
                {"upstream", t.upstream},
                {"is_leaf", dag.downstream(t.task_id).empty()},
                {"pool", t.pool},
                {"retries", t.retries},
                {"retry_delay_s", t.retry_delay.count()},
                {"timeout_s", t.execution_timeout ? Json(t.execution_timeout->count()) : Json()},
                {"priority_weight", weights[t.task_id]},
                {"owner", t.owner}};
    rows.push_back(std::move(row));
  }
  return rows;
}

// What a DAG gets when its bundle does not say: the deployment's schedule settings.
struct ScheduleDefaults {
  bool catchup = false;
  int max_active_runs = 16;
  int max_active_tasks = 16;
};

// Creates or refreshes one DAG; returns true when a new DAG version was made.
Result<bool> UpsertDag(Conn& c, const DeploymentId& d, const dag::DagSpec& dag,
                       const ScheduleDefaults& defaults, const std::string& digest,
                       const std::string& file_content) {
  Json tags = dag.tags;
  Json owners = dag.owners;
  std::optional<std::string> summary;
  std::string description;
  if (dag.timetable) {
    summary = dag.timetable->summary();
    description = dag.timetable->Description();
  }
  // The scheduler's cached next interval is dropped whenever what it was computed from changed.
  RETURN_IF_ERROR(
      c.Exec("INSERT INTO dags (deployment_id, dag_id, bundle_version, fileloc, description, tags, "
             "owners, timetable_summary, timetable_description, max_active_runs, max_active_tasks, "
             "start_date, end_date, catchup) "
             "VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8, $9, $10, $11, $12, $13, $14) "
             "ON CONFLICT (deployment_id, dag_id) DO UPDATE SET is_stale = false, "
             "bundle_version = EXCLUDED.bundle_version, fileloc = EXCLUDED.fileloc, "
             "description = EXCLUDED.description, tags = EXCLUDED.tags, owners = EXCLUDED.owners, "
             "timetable_summary = EXCLUDED.timetable_summary, "
             "timetable_description = EXCLUDED.timetable_description, "
             "max_active_runs = EXCLUDED.max_active_runs, "
             "max_active_tasks = EXCLUDED.max_active_tasks, start_date = EXCLUDED.start_date, "
             "end_date = EXCLUDED.end_date, catchup = EXCLUDED.catchup, last_parsed_time = now(), "
             "next_interval_start = CASE WHEN (dags.timetable_summary, dags.start_date, "
             "dags.end_date, dags.catchup) IS NOT DISTINCT FROM (EXCLUDED.timetable_summary, "
             "EXCLUDED.start_date, EXCLUDED.end_date, EXCLUDED.catchup) "
             "THEN dags.next_interval_start END, "
             "next_interval_end = CASE WHEN (dags.timetable_summary, dags.start_date, "
             "dags.end_date, dags.catchup) IS NOT DISTINCT FROM (EXCLUDED.timetable_summary, "
             "EXCLUDED.start_date, EXCLUDED.end_date, EXCLUDED.catchup) "
             "THEN dags.next_interval_end END",
             {d.value(), dag.dag_id, digest, dag.file, dag.description, tags.dump(), owners.dump(),
              summary, description,
              std::to_string(dag.max_active_runs.value_or(defaults.max_active_runs)),
              std::to_string(dag.max_active_tasks.value_or(defaults.max_active_tasks)),
              OptTime(dag.start_date), OptTime(dag.end_date),
              sql::B(dag.catchup.value_or(defaults.catchup))})
          .status());

  // A DAG's version changes with the file that defines it (its whole content and name).
  std::string file_digest = "sha256:" + Sha256Hex(dag.file + '\0' + file_content);
  ASSIGN_OR_RETURN(Rows latest,
                   c.Exec("SELECT file_digest FROM dag_versions WHERE deployment_id = $1 AND "
                          "dag_id = $2 ORDER BY version_number DESC LIMIT 1",
                          {d.value(), dag.dag_id}));
  if (latest.size() == 1 && latest.Text(0, 0) == file_digest) return false;
  RETURN_IF_ERROR(
      c.Exec("WITH v AS (INSERT INTO dag_versions (id, deployment_id, dag_id, version_number, "
             "file_digest, bundle_version) SELECT gen_random_uuid(), $1, $2, "
             "coalesce(max(version_number), 0) + 1, $3, $4 FROM dag_versions WHERE "
             "deployment_id = $1 AND dag_id = $2 RETURNING id) "
             "INSERT INTO dag_version_tasks (dag_version_id, task_id, ord, operator, "
             "trigger_rule, upstream, is_leaf, pool, retries, retry_delay_s, timeout_s, "
             "priority_weight, owner) SELECT v.id, x.task_id, x.ord, x.operator, x.trigger_rule, "
             "x.upstream, x.is_leaf, x.pool, x.retries, x.retry_delay_s, x.timeout_s, "
             "x.priority_weight, x.owner FROM v, jsonb_to_recordset($5::jsonb) AS x(task_id "
             "text, ord int, operator text, trigger_rule text, upstream text[], is_leaf bool, "
             "pool text, retries int, retry_delay_s int, timeout_s int, priority_weight int, "
             "owner text)",
             {d.value(), dag.dag_id, file_digest, digest, TaskRows(dag).dump()})
          .status());
  return true;
}

}  // namespace

namespace sql {

Result<std::optional<int64_t>> InsertRun(Conn& c, const NewRun& run, bool skip_conflicts) {
  ASSIGN_OR_RETURN(
      Rows r,
      c.Exec(
          std::string(
              "WITH r AS (INSERT INTO dag_runs (deployment_id, dag_id, run_id, logical_date, "
              "data_interval_start, data_interval_end, run_after, run_type, triggered_by, state, "
              "queued_at, conf, note, bundle_version, dag_version_id) VALUES ($1, $2, $3, $4, $5, "
              "$7, coalesce($6::timestamptz, now()), $8, $9, 'queued', now(), $10::jsonb, $11, "
              "$12, $13) ") +
              (skip_conflicts ? "ON CONFLICT DO NOTHING " : "") +
              "RETURNING id, deployment_id, dag_id, run_id, dag_version_id), "
              "t AS (INSERT INTO task_instances (id, deployment_id, run_pk, dag_id, run_id, "
              "task_id, max_tries, pool, priority_weight, operator, retry_delay_s, timeout_s, "
              "dag_version_id) SELECT gen_random_uuid(), r.deployment_id, r.id, r.dag_id, "
              "r.run_id, t.task_id, t.retries, t.pool, t.priority_weight, t.operator, "
              "t.retry_delay_s, t.timeout_s, r.dag_version_id FROM r JOIN dag_version_tasks t "
              "ON t.dag_version_id = r.dag_version_id) SELECT id FROM r",
          {run.deployment_id, run.dag_id, run.run_id, run.logical_date, run.data_interval_start,
           run.run_after == "now" ? std::nullopt : Param(run.run_after), run.data_interval_end,
           run.run_type, run.triggered_by, run.conf, run.note, run.bundle_version,
           run.dag_version_id}));
  if (r.size() == 0) return std::optional<int64_t>();
  return std::optional<int64_t>(r.Int(0, 0));
}

}  // namespace sql

Result<DeployResult> Pipelines::Deploy(const DeploymentId& d,
                                       const std::map<std::string, std::string>& files,
                                       const dag::Bundle& bundle,
                                       const std::optional<BundleImage>& image) {
  DeployResult out;
  out.bundle_version = bundle.digest;
  out.import_errors = bundle.errors;
  Status s = pool_->WithTx([&](Conn& c) -> Status {
    RETURN_IF_ERROR(LockLiveDeployment(c, d));
    ASSIGN_OR_RETURN(Rows cur, c.Exec("SELECT coalesce(bundle_version, ''), catchup, "
                                      "max_active_runs, max_active_tasks FROM deployments "
                                      "WHERE id = $1 FOR UPDATE",
                                      {d.value()}));
    out.unchanged = cur.Text(0, 0) == bundle.digest;
    const ScheduleDefaults defaults{cur.Bool(0, 1), static_cast<int>(cur.Int(0, 2)),
                                    static_cast<int>(cur.Int(0, 3))};
    Json j = Json::object();
    for (const auto& [name, content] : files) j[name] = content;
    RETURN_IF_ERROR(c.Exec("INSERT INTO bundle_versions (deployment_id, digest, files) VALUES "
                           "($1, $2, $3::jsonb) ON CONFLICT DO NOTHING",
                           {d.value(), bundle.digest, j.dump()})
                        .status());
    if (image) {
      // The same image again keeps its replication mark; another one starts unreplicated.
      RETURN_IF_ERROR(
          c.Exec("UPDATE bundle_versions SET image_repository = $3, image_digest = $4, "
                 "image_bytes = $5, image_replicated_at = CASE WHEN $6 THEN now() "
                 "WHEN image_digest IS NOT DISTINCT FROM $4 THEN image_replicated_at END "
                 "WHERE deployment_id = $1 AND digest = $2",
                 {d.value(), bundle.digest, image->repository, image->digest,
                  std::to_string(image->bytes), image->replicated ? "true" : "false"})
              .status());
    }
    std::vector<std::string> ids;
    for (const dag::DagSpec& dag : bundle.dags) {
      ASSIGN_OR_RETURN(bool fresh,
                       UpsertDag(c, d, dag, defaults, bundle.digest, files.at(dag.file)));
      out.new_dag_versions += fresh ? 1 : 0;
      ids.push_back(dag.dag_id);
    }
    out.dags = static_cast<int>(ids.size());
    Json id_list = ids;
    ASSIGN_OR_RETURN(
        Rows stale,
        c.Exec("UPDATE dags SET is_stale = true WHERE deployment_id = $1 AND NOT is_stale AND "
               "dag_id NOT IN (SELECT jsonb_array_elements_text($2::jsonb))",
               {d.value(), id_list.dump()}));
    out.stale_dags = stale.affected();
    RETURN_IF_ERROR(
        c.Exec("DELETE FROM import_errors WHERE deployment_id = $1", {d.value()}).status());
    if (!bundle.errors.empty()) {
      Json errs = Json::array();
      for (const dag::ImportError& e : bundle.errors) {
        errs.push_back({{"filename", e.file}, {"line", e.line}, {"message", e.message}});
      }
      RETURN_IF_ERROR(
          c.Exec("INSERT INTO import_errors (deployment_id, bundle_version, filename, line, "
                 "message) SELECT $1, $2, x.filename, x.line, x.message FROM "
                 "jsonb_to_recordset($3::jsonb) AS x(filename text, line int, message text)",
                 {d.value(), bundle.digest, errs.dump()})
              .status());
    }
    return c
        .Exec("UPDATE deployments SET bundle_version = $2 WHERE id = $1",
              {d.value(), bundle.digest})
        .status();
  });
  if (!s.ok()) return s;
  return out;
}

Result<std::optional<BundleImage>> Pipelines::VersionImage(const DeploymentId& d,
                                                           std::string_view version) {
  ASSIGN_OR_RETURN(auto c, pool_->Acquire());
  ASSIGN_OR_RETURN(Rows r, c->Exec("SELECT image_repository, image_digest, image_bytes, "
                                   "image_replicated_at IS NOT NULL FROM bundle_versions "
                                   "WHERE deployment_id = $1 AND digest = $2",
                                   {d.value(), std::string(version)}));
  if (r.size() == 0) return NotFound("bundle version " + std::string(version) + " of " +
                                     d.value() + " was never deployed");
  if (r.IsNull(0, 1)) return std::optional<BundleImage>();
  return std::optional<BundleImage>(
      BundleImage{r.Text(0, 0), r.Text(0, 1), r.Int(0, 2), r.Bool(0, 3)});
}

Result<std::vector<UnreplicatedImage>> Pipelines::UnreplicatedImages(int limit) {
  ASSIGN_OR_RETURN(auto c, pool_->Acquire());
  ASSIGN_OR_RETURN(
      Rows r, c->Exec("SELECT b.deployment_id, b.digest, b.image_repository, b.image_digest, "
                      "b.image_bytes, (extract(epoch FROM b.created_at) * 1000)::bigint "
                      "FROM bundle_versions b JOIN deployments d ON d.id = b.deployment_id "
                      "WHERE b.image_digest IS NOT NULL AND b.image_replicated_at IS NULL "
                      "AND d.deleted_at IS NULL ORDER BY b.created_at LIMIT $1",
                      {std::to_string(limit)}));
  std::vector<UnreplicatedImage> out;
  for (int i = 0; i < r.size(); ++i) {
    UnreplicatedImage u;
    u.deployment = DeploymentId(r.Text(i, 0));
    u.bundle_version = r.Text(i, 1);
    u.image = {r.Text(i, 2), r.Text(i, 3), r.Int(i, 4), false};
    u.deployed_at = tandem::WallTime(std::chrono::milliseconds(r.Int(i, 5)));
    out.push_back(std::move(u));
  }
  return out;
}

Status Pipelines::MarkImageReplicated(const DeploymentId& d, std::string_view version,
                                      std::string_view digest) {
  ASSIGN_OR_RETURN(auto c, pool_->Acquire());
  return c
      ->Exec("UPDATE bundle_versions SET image_replicated_at = now() WHERE deployment_id = $1 "
             "AND digest = $2 AND image_digest = $3 AND image_replicated_at IS NULL",
             {d.value(), std::string(version), std::string(digest)})
      .status();
}

Result<std::string> Pipelines::CurrentBundleVersion(const DeploymentId& d) {
  ASSIGN_OR_RETURN(auto c, pool_->Acquire());
  ASSIGN_OR_RETURN(Rows r, c->Exec("SELECT bundle_version FROM deployments WHERE id = $1 AND "
                                   "deleted_at IS NULL",
                                   {d.value()}));
  if (r.size() == 0) return NotFound("deployment " + d.value() + " does not exist");
  if (r.IsNull(0, 0)) return NotFound("no bundle has been deployed to this deployment");
  return r.Text(0, 0);
}

Result<std::map<std::string, std::string>> Pipelines::BundleFiles(const DeploymentId& d,
                                                                  std::string_view digest) {
  ASSIGN_OR_RETURN(auto c, pool_->Acquire());
  ASSIGN_OR_RETURN(Rows r, c->Exec("SELECT files::text FROM bundle_versions WHERE "
                                   "deployment_id = $1 AND digest = $2",
                                   {d.value(), std::string(digest)}));
  if (r.size() == 0) return NotFound("bundle version " + std::string(digest) + " does not exist");
  Json j = Json::parse(r.Text(0, 0), nullptr, false);
  if (!j.is_object()) return Internal("bundle version " + std::string(digest) + " is unreadable");
  std::map<std::string, std::string> files;
  for (const auto& [name, content] : j.items()) {
    if (!content.is_string()) return Internal("bundle file " + name + " is not text");
    files[name] = content.get<std::string>();
  }
  return files;
}

Result<model::DagRun> Pipelines::Trigger(const DeploymentId& d, std::string_view dag_id,
                                         const TriggerRequest& req) {
  std::string run_id;
  Status s = pool_->WithTx([&](Conn& c) -> Status {
    RETURN_IF_ERROR(LockLiveDeployment(c, d));
    ASSIGN_OR_RETURN(Rows v,
                     c.Exec("SELECT v.id, v.bundle_version, dg.is_stale FROM dags dg JOIN "
                            "dag_versions v ON v.deployment_id = dg.deployment_id AND v.dag_id = "
                            "dg.dag_id WHERE dg.deployment_id = $1 AND dg.dag_id = $2 ORDER BY "
                            "v.version_number DESC LIMIT 1",
                            {d.value(), std::string(dag_id)}));
    if (v.size() == 0) {
      return NotFound("The DAG with dag_id: `" + std::string(dag_id) + "` was not found");
    }
    if (v.Bool(0, 2)) {
      return FailedPrecondition("The DAG `" + std::string(dag_id) +
                                "` is no longer in the deployed bundle");
    }
    // The generated run id names the logical date, or the moment of the trigger.
    ASSIGN_OR_RETURN(Rows when,
                     c.Exec("SELECT " + sql::Ts("coalesce($1::timestamptz, now())") +
                                ", to_char(coalesce($1::timestamptz, now()) AT TIME ZONE 'UTC', "
                                "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')",
                            {req.logical_date}));
    run_id = req.run_id ? *req.run_id : "manual__" + when.Text(0, 1);
    RETURN_IF_ERROR(dag::ValidateRunId(run_id));
    ASSIGN_OR_RETURN(
        Rows taken,
        c.Exec("SELECT run_id = $3 FROM dag_runs WHERE deployment_id = $1 AND dag_id = $2 AND "
               "(run_id = $3 OR logical_date = $4::timestamptz) LIMIT 1",
               {d.value(), std::string(dag_id), run_id, req.logical_date}));
    if (taken.size() > 0) {
      return taken.Bool(0, 0)
                 ? AlreadyExists("DAG Run with run_id: `" + run_id + "` already exists")
                 : AlreadyExists("A DAG Run with logical date " + *req.logical_date +
                                 " already exists for DAG `" + std::string(dag_id) + "`");
    }
    sql::NewRun run;
    run.deployment_id = d.value();
    run.dag_id = std::string(dag_id);
    run.run_id = run_id;
    run.logical_date = req.logical_date;
    run.data_interval_start = req.data_interval_start ? req.data_interval_start : req.logical_date;
    run.data_interval_end = req.data_interval_end ? req.data_interval_end : req.logical_date;
    run.run_after = req.logical_date ? *req.logical_date : "now";
    run.run_type = "manual";
    run.triggered_by = req.triggered_by;
    run.conf = req.conf;
    run.note = req.note;
    run.dag_version_id = v.Text(0, 0);
    run.bundle_version = v.Text(0, 1);
    return sql::InsertRun(c, run, /*skip_conflicts=*/false).status();
  });
  if (!s.ok()) return s;
  return GetRun(d, dag_id, run_id);
}

}  // namespace tandem::store
