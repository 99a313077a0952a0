// What the Airflow API reads and changes after a deploy: DAGs (and pausing them), import errors,
// DAG runs (marking, notes, deleting, clearing), task instances with their tries, and XComs.
// Deploy, BundleFiles and Trigger are in deploy.cc.
//
// Tries: task_instances holds the current try of each task instance; the execution side copies
// every try into task_instance_history when it ends. So the tries of a task instance are its
// history rows plus the current row when that try has not ended yet.
//
// Clearing follows Airflow's clear_task_instances: under a lock on the run, the selected task
// instances lose their state and timestamps but keep their try number (the next queueing
// increments it) and get `max_tries = try_number + retries`, so a cleared task has its retries
// again. A try that is interrupted (running or queued) is recorded in history as failed, since
// nothing else will end it. XComs of cleared task instances are deleted and the run is queued.

#include <algorithm>
#include <nlohmann/json.hpp>

#include "store/pipeline_sql.h"
#include "store/pipelines.h"
#include "store/sql.h"

namespace tandem::store {
namespace {

using model::Dag;
using model::DagRun;
using model::ImportErrorRow;
using model::Page;
using model::PageRequest;
using model::TaskInstance;
using model::XCom;
using pg::Conn;
using pg::Rows;
using sql::ListPage;
using sql::ListSpec;
using sql::N;

std::string Quote(std::string_view s) { return "`" + std::string(s) + "`"; }

// A timestamp column as RFC 3339 text, "" when NULL.
std::string T(const std::string& col) { return "coalesce(" + sql::Ts(col) + ", '')"; }

int I(const Rows& r, int i, int col) { return static_cast<int>(r.Int(i, col)); }

constexpr std::string_view kAny = "~";

Status DagNotFound(std::string_view dag_id) {
  return NotFound("The DAG with dag_id: " + Quote(dag_id) + " was not found");
}

Status RunNotFound(std::string_view dag_id, std::string_view run_id) {
  return NotFound("The DagRun with dag_id: " + Quote(dag_id) + " and run_id: " + Quote(run_id) +
                  " was not found");
}

Status TiNotFound(std::string_view dag_id, std::string_view run_id, std::string_view task_id) {
  return NotFound("The Task Instance with dag_id: " + Quote(dag_id) + ", run_id: " + Quote(run_id) +
                  " and task_id: " + Quote(task_id) + " was not found");
}

// An SQL condition under construction, with its positional parameters.
class Cond {
 public:
  // Appends `p` to the parameters; returns its placeholder ("$n").
  std::string Param(pg::Param p) {
    params_.push_back(std::move(p));
    return "$" + std::to_string(params_.size());
  }
  void And(const std::string& c) { text_ += (text_.empty() ? "" : " AND ") + c; }
  // `col` is one of `values`; the value `null_word` (when not empty) stands for NULL.
  // REQUIRES: !values.empty()
  void In(const std::string& col, const std::vector<std::string>& values,
          std::string_view null_word = {}) {
    std::string list;
    bool null = false;
    for (const std::string& v : values) {
      if (!null_word.empty() && v == null_word) {
        null = true;
        continue;
      }
      list += (list.empty() ? "" : ", ") + Param(v);
    }
    std::string c = list.empty() ? "false" : col + " IN (" + list + ")";
    And(null ? "(" + col + " IS NULL OR " + c + ")" : c);
  }
  // Picks the DAG `dag_id` and the run `run_id` of deployment `d` ("~": any) over `alias`, a
  // table with deployment_id, dag_id and run_id columns. Rows of a run are picked over the run
  // (dag_runs, joined as r), whose unique key indexes these columns, and not over their copies in
  // task_instances or xcoms, which no index covers: those were a scan of the whole table.
  void Scope(const DeploymentId& d, std::string_view dag_id, std::string_view run_id,
             const std::string& alias) {
    And(alias + ".deployment_id = " + Param(d.value()));
    if (dag_id != kAny) And(alias + ".dag_id = " + Param(std::string(dag_id)));
    if (run_id != kAny) And(alias + ".run_id = " + Param(std::string(run_id)));
  }

  const std::string& text() const { return text_; }
  const pg::Params& params() const { return params_; }

 private:
  std::string text_;
  pg::Params params_;
};

// A uuid[] parameter. The ids come from the database, so they need no quoting.
std::string UuidArray(const std::vector<std::string>& ids) {
  std::string out = "{";
  for (const std::string& id : ids) out += (out.size() > 1 ? "," : "") + id;
  return out + "}";
}

std::vector<std::string> JsonStrings(const std::string& text) {
  std::vector<std::string> out;
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_array()) return out;
  for (const auto& e : j) {
    if (e.is_string()) out.push_back(e.get<std::string>());
  }
  return out;
}

// NotFound unless the DAG (when not "~") and the run (when not "~") exist in `d`.
Status CheckScope(Conn& c, const DeploymentId& d, std::string_view dag_id,
                  std::string_view run_id) {
  if (dag_id != kAny) {
    ASSIGN_OR_RETURN(Rows r, c.Exec("SELECT 1 FROM dags WHERE deployment_id = $1 AND dag_id = $2",
                                    {d.value(), std::string(dag_id)}));
    if (r.size() == 0) return DagNotFound(dag_id);
  }
  if (run_id != kAny) {
    Cond w;
    w.Scope(d, dag_id, run_id, "r");
    ASSIGN_OR_RETURN(Rows r,
                     c.Exec("SELECT 1 FROM dag_runs r WHERE " + w.text() + " LIMIT 1", w.params()));
    if (r.size() == 0) return RunNotFound(dag_id, run_id);
  }
  return Status::Ok();
}

// ---- DAGs

// The next run's dates exist only for a scheduled DAG that is not paused.
std::string NextRun(const std::string& col) {
  return "CASE WHEN d.timetable_summary IS NOT NULL AND NOT d.is_paused THEN " + T(col) +
         " ELSE '' END";
}

const ListSpec kDags{
    "dags d",
    "d.dag_id, d.is_paused, d.is_stale, d.bundle_version, d.fileloc, d.description, "
    "d.tags::text, d.owners::text, d.timetable_summary, d.timetable_description, "
    "d.max_active_runs, d.max_active_tasks, EXISTS (SELECT 1 FROM import_errors e WHERE "
    "e.deployment_id = d.deployment_id AND e.filename = d.fileloc), " +
        T("d.last_parsed_time") + ", " + NextRun("d.next_interval_start") + ", " +
        NextRun("d.next_interval_end"),
    "d.dag_id",
    {{"dag_id", "d.dag_id"},
     {"dag_display_name", "d.dag_id"},
     {"is_paused", "d.is_paused"},
     {"next_dagrun", "d.next_interval_start"},
     {"last_parsed_time", "d.last_parsed_time"}},
    "DAG",
    "dag_id",
    "dag_id",
    "d.dag_id"};

Dag DagFromRow(const Rows& r, int i) {
  Dag d;
  d.dag_id = r.Text(i, 0);
  d.is_paused = r.Bool(i, 1);
  d.is_stale = r.Bool(i, 2);
  d.bundle_version = r.Text(i, 3);
  d.fileloc = r.Text(i, 4);
  d.description = r.Text(i, 5);
  d.tags = JsonStrings(r.Text(i, 6));
  d.owners = JsonStrings(r.Text(i, 7));
  d.timetable_summary = r.Opt(i, 8);
  d.timetable_description = r.Text(i, 9);
  d.max_active_runs = I(r, i, 10);
  d.max_active_tasks = I(r, i, 11);
  d.has_import_errors = r.Bool(i, 12);
  d.last_parsed_time = r.Text(i, 13);
  d.next_dagrun_logical_date = r.Text(i, 14);
  d.next_dagrun_data_interval_start = r.Text(i, 14);
  d.next_dagrun_data_interval_end = r.Text(i, 15);
  d.next_dagrun_run_after = r.Text(i, 15);
  return d;
}

Result<Dag> GetDagIn(Conn& c, const DeploymentId& d, std::string_view dag_id) {
  ASSIGN_OR_RETURN(Rows r, c.Exec("SELECT " + kDags.columns + " FROM " + kDags.table +
                                      " WHERE d.deployment_id = $1 AND d.dag_id = $2",
                                  {d.value(), std::string(dag_id)}));
  if (r.size() == 0) return DagNotFound(dag_id);
  return DagFromRow(r, 0);
}

// ---- import errors

const ListSpec kImportErrors{"import_errors",
                             "id, filename, message, line, " + T("created_at") + ", bundle_version",
                             "filename",
                             {{"id", "id"},
                              {"import_error_id", "id"},
                              {"filename", "filename"},
                              {"timestamp", "created_at"}},
                             "ImportError",
                             "import_error_id"};

ImportErrorRow ImportErrorFromRow(const Rows& r, int i) {
  return ImportErrorRow{r.Int(i, 0), r.Text(i, 1), r.Text(i, 2),
                        I(r, i, 3),  r.Text(i, 4), r.Text(i, 5)};
}

// ---- runs

const ListSpec kRuns{
    "dag_runs r JOIN dag_versions v ON v.id = r.dag_version_id",
    "r.id, r.dag_id, r.run_id, " + T("r.logical_date") + ", " + T("r.data_interval_start") + ", " +
        T("r.data_interval_end") + ", " + T("r.run_after") + ", " + T("r.queued_at") + ", " +
        T("r.start_date") + ", " + T("r.end_date") + ", " + T("r.last_scheduling_decision") +
        ", r.run_type, r.triggered_by, r.state, r.conf::text, r.note, r.bundle_version, v.id, "
        "v.version_number, v.dag_id, v.bundle_version, " +
        T("v.created_at"),
    "r.run_id",
    {{"id", "r.id"},
     {"dag_id", "r.dag_id"},
     {"run_id", "r.run_id"},
     {"dag_run_id", "r.run_id"},
     {"logical_date", "r.logical_date"},
     {"run_after", "r.run_after"},
     {"data_interval_start", "r.data_interval_start"},
     {"data_interval_end", "r.data_interval_end"},
     {"start_date", "r.start_date"},
     {"end_date", "r.end_date"},
     {"queued_at", "r.queued_at"},
     {"state", "r.state"},
     {"run_type", "r.run_type"}},
    "DagRun",
    "run_id",
    "id",
    "r.id"};

DagRun RunFromRow(const Rows& r, int i) {
  DagRun x;
  x.pk = r.Int(i, 0);
  x.dag_id = r.Text(i, 1);
  x.run_id = r.Text(i, 2);
  x.logical_date = r.Text(i, 3);
  x.data_interval_start = r.Text(i, 4);
  x.data_interval_end = r.Text(i, 5);
  x.run_after = r.Text(i, 6);
  x.queued_at = r.Text(i, 7);
  x.start_date = r.Text(i, 8);
  x.end_date = r.Text(i, 9);
  x.last_scheduling_decision = r.Text(i, 10);
  x.run_type = r.Text(i, 11);
  x.triggered_by = r.Text(i, 12);
  x.state = r.Text(i, 13);
  x.conf = r.Text(i, 14);
  x.note = r.Opt(i, 15);
  x.bundle_version = r.Text(i, 16);
  x.dag_version.id = r.Text(i, 17);
  x.dag_version.version_number = I(r, i, 18);
  x.dag_version.dag_id = r.Text(i, 19);
  x.dag_version.bundle_version = r.Text(i, 20);
  x.dag_version.created_at = r.Text(i, 21);
  return x;
}

Result<DagRun> GetRunIn(Conn& c, const DeploymentId& d, std::string_view dag_id,
                        std::string_view run_id) {
  ASSIGN_OR_RETURN(Rows r, c.Exec("SELECT " + kRuns.columns + " FROM " + kRuns.table +
                                      " WHERE r.deployment_id = $1 AND r.dag_id = $2 AND "
                                      "r.run_id = $3",
                                  {d.value(), std::string(dag_id), std::string(run_id)}));
  if (r.size() == 0) return RunNotFound(dag_id, run_id);
  return RunFromRow(r, 0);
}

// The primary key of a run, its row locked until the transaction ends.
Result<std::string> LockRun(Conn& c, const DeploymentId& d, std::string_view dag_id,
                            std::string_view run_id) {
  ASSIGN_OR_RETURN(Rows r, c.Exec("SELECT id FROM dag_runs WHERE deployment_id = $1 AND "
                                  "dag_id = $2 AND run_id = $3 FOR UPDATE",
                                  {d.value(), std::string(dag_id), std::string(run_id)}));
  if (r.size() == 0) return RunNotFound(dag_id, run_id);
  return r.Text(0, 0);
}

// ---- task instances and their tries

// The columns of one try, from `a` (task_instances or task_instance_history joined with
// dag_runs r and dag_versions v); `id` and `note` are the expressions for those fields.
std::string TryColumns(const std::string& a, const std::string& id, const std::string& note) {
  return id + ", " + a + ".dag_id, " + a + ".run_id, " + a + ".task_id, " + T("r.logical_date") +
         ", " + T("r.run_after") + ", coalesce(" + a + ".state, ''), " + a + ".try_number, " + a +
         ".max_tries, " + a + ".pool, " + a + ".pool_slots, " + a + ".priority_weight, " + a +
         ".operator, " + T(a + ".queued_when") + ", " + T(a + ".scheduled_when") + ", " +
         T(a + ".start_date") + ", " + T(a + ".end_date") + ", " + a + ".hostname, " + a +
         ".unixname, " + a + ".pid, " + note + ", v.id, v.version_number, v.bundle_version, " +
         T("v.created_at");
}

std::string TryFrom(const std::string& table, const std::string& a) {
  return table + " " + a + " JOIN dag_runs r ON r.id = " + a + ".run_pk JOIN dag_versions v ON " +
         "v.id = " + a + ".dag_version_id";
}

// Current task instances, in the order of their tasks in the run's DAG version (`t.ord`); those
// of tasks that left it (removed) come last.
const ListSpec kTis{TryFrom("task_instances", "ti") +
                        " LEFT JOIN dag_version_tasks t ON t.dag_version_id = r.dag_version_id AND "
                        "t.task_id = ti.task_id",
                    TryColumns("ti", "ti.id", "ti.note"),
                    "ti.task_id",
                    {{"map_index", "t.ord"},
                     {"id", "ti.id"},
                     {"task_id", "ti.task_id"},
                     {"dag_id", "ti.dag_id"},
                     {"run_id", "ti.run_id"},
                     {"state", "ti.state"},
                     {"try_number", "ti.try_number"},
                     {"start_date", "ti.start_date"},
                     {"end_date", "ti.end_date"},
                     {"logical_date", "r.logical_date"},
                     {"run_after", "r.run_after"},
                     {"pool", "ti.pool"},
                     {"priority_weight", "ti.priority_weight"},
                     {"operator", "ti.operator"},
                     {"hostname", "ti.hostname"}},
                    "TaskInstance",
                    "task_id",
                    "map_index",
                    "r.id, ti.task_id"};

const std::string kTryHistoryColumns = TryColumns("h", "h.ti_id", "NULL::text");
const std::string kHistoryFrom = TryFrom("task_instance_history", "h");

TaskInstance TryFromRow(const Rows& r, int i) {
  TaskInstance t;
  t.id = r.Text(i, 0);
  t.dag_id = r.Text(i, 1);
  t.run_id = r.Text(i, 2);
  t.task_id = r.Text(i, 3);
  t.logical_date = r.Text(i, 4);
  t.run_after = r.Text(i, 5);
  t.state = r.Text(i, 6);
  t.try_number = I(r, i, 7);
  t.max_tries = I(r, i, 8);
  t.pool = r.Text(i, 9);
  t.pool_slots = I(r, i, 10);
  t.priority_weight = I(r, i, 11);
  t.operator_name = r.Text(i, 12);
  t.queued_when = r.Text(i, 13);
  t.scheduled_when = r.Text(i, 14);
  t.start_date = r.Text(i, 15);
  t.end_date = r.Text(i, 16);
  t.hostname = r.Text(i, 17);
  t.unixname = r.Text(i, 18);
  if (!r.IsNull(i, 19)) t.pid = I(r, i, 19);
  t.note = r.Opt(i, 20);
  t.dag_version_id = r.Text(i, 21);
  t.dag_version_number = I(r, i, 22);
  t.bundle_version = r.Text(i, 23);
  t.dag_version_created_at = r.Text(i, 24);
  return t;
}

Result<TaskInstance> GetTiIn(Conn& c, const DeploymentId& d, std::string_view dag_id,
                             std::string_view run_id, std::string_view task_id) {
  ASSIGN_OR_RETURN(
      Rows r, c.Exec("SELECT " + kTis.columns + " FROM " + kTis.table +
                         " WHERE r.deployment_id = $1 AND r.dag_id = $2 AND "
                         "r.run_id = $3 AND ti.task_id = $4",
                     {d.value(), std::string(dag_id), std::string(run_id), std::string(task_id)}));
  if (r.size() == 0) return TiNotFound(dag_id, run_id, task_id);
  return TryFromRow(r, 0);
}

// Task instances by id, in task order.
Result<std::vector<TaskInstance>> GetTisIn(Conn& c, const std::vector<std::string>& ids) {
  ASSIGN_OR_RETURN(Rows r, c.Exec("SELECT " + kTis.columns + " FROM " + kTis.table +
                                      " WHERE ti.id = ANY($1::uuid[]) ORDER BY t.ord, ti.task_id",
                                  {UuidArray(ids)}));
  std::vector<TaskInstance> out;
  out.reserve(r.size());
  for (int i = 0; i < r.size(); ++i) out.push_back(TryFromRow(r, i));
  return out;
}

// The current try counts as a try once it was queued, until history records it.
bool CurrentTryIsUnrecorded(const TaskInstance& ti, const std::vector<TaskInstance>& history) {
  return ti.try_number > 0 &&
         std::none_of(history.begin(), history.end(),
                      [&](const TaskInstance& h) { return h.try_number == ti.try_number; });
}

// ---- XComs

const ListSpec kXComs{"xcoms x JOIN dag_runs r ON r.id = x.run_pk",
                      "x.dag_id, x.run_id, x.task_id, x.key, x.value::text, " + T("x.created_at") +
                          ", " + T("r.logical_date"),
                      "x.key",
                      {{"key", "x.key"},
                       {"dag_id", "x.dag_id"},
                       {"run_id", "x.run_id"},
                       {"task_id", "x.task_id"},
                       {"timestamp", "x.created_at"}},
                      "XCom",
                      "key",
                      "key",
                      "x.run_pk, x.task_id, x.key"};

XCom XComFromRow(const Rows& r, int i) {
  return XCom{r.Text(i, 0), r.Text(i, 1), r.Text(i, 2), r.Text(i, 3),
              r.Text(i, 4), r.Text(i, 5), r.Text(i, 6)};
}

}  // namespace

// ---- DAGs ------------------------------------------------------------------------------------

Result<Page<Dag>> Pipelines::ListDags(const DeploymentId& d, const DagFilter& filter) {
  Cond w;
  w.And("d.deployment_id = " + w.Param(d.value()));
  if (!filter.include_stale) w.And("NOT d.is_stale");
  if (filter.paused) w.And("d.is_paused = " + w.Param(sql::B(*filter.paused)));
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  Page<Dag> out;
  ASSIGN_OR_RETURN(Rows r, ListPage(*c, kDags, w.text(), w.params(), filter.page, &out.total));
  for (int i = 0; i < r.size(); ++i) out.items.push_back(DagFromRow(r, i));
  return out;
}

Result<Dag> Pipelines::GetDag(const DeploymentId& d, std::string_view dag_id) {
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  return GetDagIn(*c, d, dag_id);
}

Result<Dag> Pipelines::SetPaused(const DeploymentId& d, std::string_view dag_id, bool paused) {
  Dag out;
  Status st = pool_->WithTx([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(Rows r, c.Exec("UPDATE dags SET is_paused = $3 WHERE deployment_id = $1 AND "
                                    "dag_id = $2",
                                    {d.value(), std::string(dag_id), sql::B(paused)}));
    if (r.affected() == 0) return DagNotFound(dag_id);
    ASSIGN_OR_RETURN(out, GetDagIn(c, d, dag_id));
    return Status::Ok();
  });
  if (!st.ok()) return st;
  return out;
}

// ---- import errors ---------------------------------------------------------------------------

Result<Page<ImportErrorRow>> Pipelines::ListImportErrors(const DeploymentId& d,
                                                         const PageRequest& page) {
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  Page<ImportErrorRow> out;
  ASSIGN_OR_RETURN(Rows r, ListPage(*c, kImportErrors, d, page, &out.total));
  for (int i = 0; i < r.size(); ++i) out.items.push_back(ImportErrorFromRow(r, i));
  return out;
}

Result<ImportErrorRow> Pipelines::GetImportError(const DeploymentId& d, int64_t id) {
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  ASSIGN_OR_RETURN(Rows r, c->Exec("SELECT " + kImportErrors.columns +
                                       " FROM import_errors WHERE deployment_id = $1 AND id = $2",
                                   {d.value(), N(id)}));
  if (r.size() == 0) {
    return NotFound("The ImportError with import_error_id: " + Quote(N(id)) + " was not found");
  }
  return ImportErrorFromRow(r, 0);
}

// ---- DAG runs --------------------------------------------------------------------------------

Result<Page<DagRun>> Pipelines::ListRuns(const DeploymentId& d, std::string_view dag_id,
                                         const RunFilter& filter) {
  Cond w;
  w.Scope(d, dag_id, kAny, "r");
  if (!filter.states.empty()) w.In("r.state", filter.states);
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  RETURN_IF_ERROR(CheckScope(*c, d, dag_id, kAny));
  Page<DagRun> out;
  ASSIGN_OR_RETURN(Rows r, ListPage(*c, kRuns, w.text(), w.params(), filter.page, &out.total));
  for (int i = 0; i < r.size(); ++i) out.items.push_back(RunFromRow(r, i));
  return out;
}

Result<DagRun> Pipelines::GetRun(const DeploymentId& d, std::string_view dag_id,
                                 std::string_view run_id) {
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  return GetRunIn(*c, d, dag_id, run_id);
}

Result<DagRun> Pipelines::PatchRun(const DeploymentId& d, std::string_view dag_id,
                                   std::string_view run_id, std::optional<std::string> state,
                                   std::optional<std::optional<std::string>> note) {
  if (state && *state != model::kRunSuccess && *state != model::kRunFailed &&
      *state != model::kRunQueued) {
    return InvalidArgument("state must be one of success, failed, queued (got " + Quote(*state) +
                           ")");
  }
  DagRun out;
  Status st = pool_->WithTx([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(std::string pk, LockRun(c, d, dag_id, run_id));
    if (state == model::kRunSuccess) {
      RETURN_IF_ERROR(c.Exec("UPDATE task_instances SET state = 'success', "
                             "start_date = coalesce(start_date, now()), end_date = now() "
                             "WHERE run_pk = $1 AND (state IS NULL OR state IN ('scheduled', "
                             "'queued', 'running', 'up_for_retry'))",
                             {pk})
                          .status());
    } else if (state == model::kRunFailed) {
      RETURN_IF_ERROR(c.Exec("UPDATE task_instances SET state = CASE WHEN state IS NULL THEN "
                             "'skipped' ELSE 'failed' END, end_date = now() WHERE run_pk = $1 AND "
                             "(state IS NULL OR state IN ('scheduled', 'queued', 'running', "
                             "'up_for_retry'))",
                             {pk})
                          .status());
    }
    if (state == model::kRunQueued) {
      // As Airflow's DagRun.set_state: a run queued again has not started.
      RETURN_IF_ERROR(c.Exec("UPDATE dag_runs SET queued_at = CASE WHEN state = 'queued' THEN "
                             "queued_at ELSE now() END, start_date = NULL, end_date = NULL, "
                             "state = 'queued' WHERE id = $1",
                             {pk})
                          .status());
    } else if (state) {
      RETURN_IF_ERROR(c.Exec("UPDATE dag_runs SET end_date = CASE WHEN state = $2 THEN "
                             "coalesce(end_date, now()) ELSE now() END, state = $2 WHERE id = $1",
                             {pk, *state})
                          .status());
    }
    if (note) {
      RETURN_IF_ERROR(
          c.Exec("UPDATE dag_runs SET note = $2 WHERE id = $1", {pk, sql::Opt(*note)}).status());
    }
    ASSIGN_OR_RETURN(out, GetRunIn(c, d, dag_id, run_id));
    return Status::Ok();
  });
  if (!st.ok()) return st;
  return out;
}

Status Pipelines::DeleteRun(const DeploymentId& d, std::string_view dag_id,
                            std::string_view run_id) {
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  ASSIGN_OR_RETURN(Rows r, c->Exec("DELETE FROM dag_runs WHERE deployment_id = $1 AND "
                                   "dag_id = $2 AND run_id = $3",
                                   {d.value(), std::string(dag_id), std::string(run_id)}));
  if (r.affected() == 0) return RunNotFound(dag_id, run_id);
  return Status::Ok();
}

Result<std::vector<TaskInstance>> Pipelines::ClearRun(const DeploymentId& d,
                                                      std::string_view dag_id,
                                                      std::string_view run_id,
                                                      const ClearRequest& req) {
  std::vector<TaskInstance> out;
  Status st = pool_->WithTx([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(Rows run, c.Exec("SELECT id, dag_version_id FROM dag_runs WHERE "
                                      "deployment_id = $1 AND dag_id = $2 AND run_id = $3 "
                                      "FOR UPDATE",
                                      {d.value(), std::string(dag_id), std::string(run_id)}));
    if (run.size() == 0) return RunNotFound(dag_id, run_id);
    const std::string pk = run.Text(0, 0);
    // The DAG version the run will run: its own, or the DAG's latest.
    std::string version = run.Text(0, 1);
    std::string bundle_version;
    if (req.run_on_latest_version) {
      ASSIGN_OR_RETURN(Rows v, c.Exec("SELECT id, bundle_version FROM dag_versions WHERE "
                                      "deployment_id = $1 AND dag_id = $2 "
                                      "ORDER BY version_number DESC LIMIT 1",
                                      {d.value(), std::string(dag_id)}));
      if (v.size() == 0) return Internal("the DAG " + Quote(dag_id) + " has no version");
      version = v.Text(0, 0);
      bundle_version = v.Text(0, 1);
    }

    // The selected task instances: those of tasks in that version that the request names.
    Cond w;
    w.And("ti.run_pk = " + w.Param(pk));
    w.And("ti.task_id IN (SELECT task_id FROM dag_version_tasks WHERE dag_version_id = " +
          w.Param(version) + ")");
    if (req.only_failed) w.And("ti.state IN ('failed', 'upstream_failed')");
    if (!req.task_ids.empty()) w.In("ti.task_id", req.task_ids);
    ASSIGN_OR_RETURN(Rows sel, c.Exec("SELECT ti.id FROM task_instances ti WHERE " + w.text() +
                                          " ORDER BY ti.id FOR UPDATE",
                                      w.params()));
    std::vector<std::string> ids;
    ids.reserve(sel.size());
    for (int i = 0; i < sel.size(); ++i) ids.push_back(sel.Text(i, 0));
    const std::string id_array = UuidArray(ids);

    if (!req.dry_run) {
      int added = 0;
      if (req.run_on_latest_version) {
        RETURN_IF_ERROR(c.Exec("UPDATE dag_runs SET dag_version_id = $2, bundle_version = $3 "
                               "WHERE id = $1",
                               {pk, version, bundle_version})
                            .status());
        RETURN_IF_ERROR(c.Exec("UPDATE task_instances SET state = 'removed' WHERE run_pk = $1 "
                               "AND state IS DISTINCT FROM 'removed' AND task_id NOT IN "
                               "(SELECT task_id FROM dag_version_tasks WHERE dag_version_id = $2)",
                               {pk, version})
                            .status());
        ASSIGN_OR_RETURN(
            Rows ins,
            c.Exec("INSERT INTO task_instances (id, deployment_id, run_pk, dag_id, run_id, "
                   "task_id, max_tries, pool, priority_weight, operator, retry_delay_s, "
                   "timeout_s, dag_version_id) "
                   "SELECT gen_random_uuid(), r.deployment_id, r.id, r.dag_id, r.run_id, "
                   "t.task_id, t.retries, t.pool, t.priority_weight, t.operator, "
                   "t.retry_delay_s, t.timeout_s, t.dag_version_id "
                   "FROM dag_runs r JOIN dag_version_tasks t ON t.dag_version_id = $2 "
                   "WHERE r.id = $1 AND NOT EXISTS (SELECT 1 FROM task_instances ti WHERE "
                   "ti.run_pk = r.id AND ti.task_id = t.task_id)",
                   {pk, version}));
        added = ins.affected();
      }
      // An interrupted try ends here, as failed; finished tries are in history already.
      RETURN_IF_ERROR(
          c.Exec(
               std::string("INSERT INTO task_instance_history (") + sql::kHistoryColumns +
                   ") SELECT id, deployment_id, run_pk, dag_id, run_id, task_id, 'failed', "
                   "try_number, max_tries, pool, pool_slots, priority_weight, operator, "
                   "queued_when, scheduled_when, start_date, coalesce(end_date, now()), hostname, "
                   "unixname, pid, dag_version_id FROM task_instances "
                   "WHERE id = ANY($1::uuid[]) AND state IN ('running', 'queued') AND "
                   "try_number > 0 ON CONFLICT (ti_id, try_number) DO NOTHING",
               {id_array})
              .status());
      RETURN_IF_ERROR(
          c.Exec("UPDATE task_instances ti SET state = NULL, start_date = NULL, end_date = NULL, "
                 "queued_when = NULL, scheduled_when = NULL, next_retry_at = NULL, "
                 "worker_id = NULL, pid = NULL, hostname = '', dag_version_id = t.dag_version_id, "
                 "pool = t.pool, max_tries = ti.try_number + t.retries, "
                 "priority_weight = t.priority_weight, operator = t.operator, "
                 "retry_delay_s = t.retry_delay_s, timeout_s = t.timeout_s "
                 "FROM dag_version_tasks t WHERE ti.id = ANY($1::uuid[]) AND "
                 "t.dag_version_id = $2 AND t.task_id = ti.task_id",
                 {id_array, version})
              .status());
      RETURN_IF_ERROR(c.Exec("DELETE FROM xcoms x USING task_instances ti WHERE "
                             "ti.id = ANY($1::uuid[]) AND x.run_pk = ti.run_pk AND "
                             "x.task_id = ti.task_id",
                             {id_array})
                          .status());
      // As Airflow: a clear that changed no task instance leaves the run as it is.
      if (!ids.empty() || added > 0) {
        RETURN_IF_ERROR(c.Exec("UPDATE dag_runs SET state = 'queued', start_date = NULL, "
                               "end_date = NULL, queued_at = now() WHERE id = $1",
                               {pk})
                            .status());
      }
    }
    ASSIGN_OR_RETURN(out, GetTisIn(c, ids));
    return Status::Ok();
  });
  if (!st.ok()) return st;
  return out;
}

// ---- task instances --------------------------------------------------------------------------

Result<Page<TaskInstance>> Pipelines::ListTaskInstances(const DeploymentId& d,
                                                        std::string_view dag_id,
                                                        std::string_view run_id,
                                                        const TiFilter& filter) {
  Cond w;
  w.Scope(d, dag_id, run_id, "r");
  if (!filter.states.empty()) w.In("ti.state", filter.states, "none");
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  RETURN_IF_ERROR(CheckScope(*c, d, dag_id, run_id));
  Page<TaskInstance> out;
  ASSIGN_OR_RETURN(Rows r, ListPage(*c, kTis, w.text(), w.params(), filter.page, &out.total));
  for (int i = 0; i < r.size(); ++i) out.items.push_back(TryFromRow(r, i));
  return out;
}

Result<TaskInstance> Pipelines::GetTaskInstance(const DeploymentId& d, std::string_view dag_id,
                                                std::string_view run_id, std::string_view task_id) {
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  return GetTiIn(*c, d, dag_id, run_id, task_id);
}

Result<std::vector<TaskInstance>> Pipelines::ListTries(const DeploymentId& d,
                                                       std::string_view dag_id,
                                                       std::string_view run_id,
                                                       std::string_view task_id) {
  std::vector<TaskInstance> out;
  // One snapshot, so a try that ends meanwhile is seen once.
  Status st = pool_->WithTx([&](Conn& c) -> Status {
    RETURN_IF_ERROR(c.ExecScript("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"));
    ASSIGN_OR_RETURN(TaskInstance current, GetTiIn(c, d, dag_id, run_id, task_id));
    ASSIGN_OR_RETURN(Rows r, c.Exec("SELECT " + kTryHistoryColumns + " FROM " + kHistoryFrom +
                                        " WHERE h.ti_id = $1 ORDER BY h.try_number",
                                    {current.id}));
    for (int i = 0; i < r.size(); ++i) out.push_back(TryFromRow(r, i));
    if (CurrentTryIsUnrecorded(current, out)) {
      out.push_back(std::move(current));
      std::stable_sort(out.begin(), out.end(), [](const TaskInstance& a, const TaskInstance& b) {
        return a.try_number < b.try_number;
      });
    }
    return Status::Ok();
  });
  if (!st.ok()) return st;
  return out;
}

Result<TaskInstance> Pipelines::GetTry(const DeploymentId& d, std::string_view dag_id,
                                       std::string_view run_id, std::string_view task_id,
                                       int try_number) {
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  ASSIGN_OR_RETURN(TaskInstance current, GetTiIn(*c, d, dag_id, run_id, task_id));
  ASSIGN_OR_RETURN(Rows r, c->Exec("SELECT " + kTryHistoryColumns + " FROM " + kHistoryFrom +
                                       " WHERE h.ti_id = $1 AND h.try_number = $2",
                                   {current.id, N(try_number)}));
  if (r.size() > 0) return TryFromRow(r, 0);
  if (try_number > 0 && current.try_number == try_number) return current;
  return NotFound("The Task Instance with dag_id: " + Quote(dag_id) + ", run_id: " + Quote(run_id) +
                  ", task_id: " + Quote(task_id) + " and try_number: " + Quote(N(try_number)) +
                  " was not found");
}

// ---- XComs -----------------------------------------------------------------------------------

Result<Page<XCom>> Pipelines::ListXComs(const DeploymentId& d, std::string_view dag_id,
                                        std::string_view run_id, std::string_view task_id,
                                        const PageRequest& page) {
  Cond w;
  w.Scope(d, dag_id, run_id, "r");
  if (task_id != kAny) w.And("x.task_id = " + w.Param(std::string(task_id)));
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  RETURN_IF_ERROR(CheckScope(*c, d, dag_id, run_id));
  Page<XCom> out;
  ASSIGN_OR_RETURN(Rows r, ListPage(*c, kXComs, w.text(), w.params(), page, &out.total));
  for (int i = 0; i < r.size(); ++i) out.items.push_back(XComFromRow(r, i));
  return out;
}

Result<XCom> Pipelines::GetXCom(const DeploymentId& d, std::string_view dag_id,
                                std::string_view run_id, std::string_view task_id,
                                std::string_view key) {
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  ASSIGN_OR_RETURN(Rows r, c->Exec("SELECT " + kXComs.columns + " FROM " + kXComs.table +
                                       " WHERE r.deployment_id = $1 AND r.dag_id = $2 AND "
                                       "r.run_id = $3 AND x.task_id = $4 AND x.key = $5",
                                   {d.value(), std::string(dag_id), std::string(run_id),
                                    std::string(task_id), std::string(key)}));
  if (r.size() == 0) return NotFound("XCom entry with key: " + Quote(key) + " not found");
  return XComFromRow(r, 0);
}

}  // namespace tandem::store
