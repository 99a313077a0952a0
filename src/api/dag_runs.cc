// Airflow REST API v2 DAG runs, per deployment:
// {kAirflowRoot}/dags/{dag_id}/dagRuns[/{dag_run_id}[/clear]].
//
// Shapes follow the Airflow spec (DAGRunResponse, DAGRunCollectionResponse,
// TriggerDAGRunPostBody, DAGRunPatchBody, DAGRunClearBody). A trigger queues a manual run of the
// DAG's latest version with its task instances; the scheduler is woken at once after a trigger,
// a state change and a clear. dag_id "~" lists the runs of every DAG. Datetimes in bodies are
// RFC 3339 (an offset-less time is taken as UTC) and are stored to the second. The clear
// endpoint answers as Airflow's does: the task instances it would clear for a dry run (the
// default), else the run as it is after the clear.
#include "api/context.h"
#include "api/errors.h"
#include "api/json_util.h"
#include "api/pipeline_json.h"
#include "dag/bundle.h"
#include "dag/timetable.h"
#include "logs/log_store.h"
#include "model/validate.h"
#include "store/pipelines.h"

namespace tandem::api {
namespace {

// Airflow's limit on a note (DAGRunPatchBody.note.maxLength).
constexpr size_t kMaxNoteLength = 1000;

// An optional datetime field: absent or null leaves `out` empty; else the time as RFC 3339 UTC.
Status ReadTime(const Json& j, const char* key, std::optional<std::string>* out) {
  std::optional<std::string> text;
  RETURN_IF_ERROR(ReadOptString(j, key, &text));
  if (!text) return Status::Ok();
  auto t = dag::ParseTime(*text);
  if (!t.ok()) return InvalidArgument("field `" + std::string(key) + "`: " + t.status().message());
  *out = dag::FormatTimeZ(*t);
  return Status::Ok();
}

Result<store::TriggerRequest> ParseTrigger(const Json& j, size_t max_value) {
  RETURN_IF_ERROR(CheckFields(j,
                              {"dag_run_id", "data_interval_start", "data_interval_end",
                               "logical_date", "run_after", "conf", "note"},
                              {"logical_date"}));
  store::TriggerRequest t;
  RETURN_IF_ERROR(ReadOptString(j, "dag_run_id", &t.run_id));
  if (t.run_id) RETURN_IF_ERROR(dag::ValidateRunId(*t.run_id));
  RETURN_IF_ERROR(ReadTime(j, "logical_date", &t.logical_date));
  RETURN_IF_ERROR(ReadTime(j, "data_interval_start", &t.data_interval_start));
  RETURN_IF_ERROR(ReadTime(j, "data_interval_end", &t.data_interval_end));
  if (t.data_interval_start.has_value() != t.data_interval_end.has_value()) {
    return InvalidArgument(
        "Either both data_interval_start and data_interval_end must be provided or both must "
        "be None");
  }
  // Both are RFC 3339 UTC of one format, so text order is time order.
  if (t.data_interval_start && *t.data_interval_start > *t.data_interval_end) {
    return InvalidArgument("data_interval_start must not be after data_interval_end");
  }
  std::optional<std::string> run_after;  // accepted and ignored: a manual run is due now
  RETURN_IF_ERROR(ReadTime(j, "run_after", &run_after));
  if (auto conf = j.find("conf"); conf != j.end() && !conf->is_null()) {
    if (!conf->is_object()) {
      return InvalidArgument("field `conf` must be an object or null, got " +
                             std::string(conf->type_name()));
    }
    t.conf = conf->dump();
    RETURN_IF_ERROR(model::ValidateSize("conf", t.conf.size(), max_value));
  }
  RETURN_IF_ERROR(ReadOptString(j, "note", &t.note));
  if (t.note) RETURN_IF_ERROR(model::ValidateSize("note", t.note->size(), max_value));
  return t;
}

}  // namespace

void RegisterDagRunRoutes(Router& r, const ApiContext& ctx) {
  store::Store* store = ctx.store;
  store::Pipelines* pipelines = ctx.pipelines;
  std::function<void()> wake = ctx.wake_scheduler;
  size_t max_value = ctx.max_value_bytes;
  const std::string base = std::string(kAirflowRoot) + "/dags/{dag_id}/dagRuns";
  const std::string run = base + "/{dag_run_id}";

  r.Add("GET", base, Wrap([store, pipelines](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolvePipelineDeployment(store, pipelines, req));
          store::RunFilter filter;
          ASSIGN_OR_RETURN(filter.page, ReadPage(req, "run_id_pattern"));
          ASSIGN_OR_RETURN(filter.states,
                           QueryValues(req, "state", {"queued", "running", "success", "failed"}));
          ASSIGN_OR_RETURN(model::Page<model::DagRun> p,
                           pipelines->ListRuns(d, req.params.at("dag_id"), filter));
          Json items = Json::array();
          for (const auto& x : p.items) items.push_back(DagRunJson(x));
          return JsonResponse(200, {{"dag_runs", items}, {"total_entries", p.total}});
        }));

  r.Add("POST", base,
        Wrap([store, pipelines, wake, max_value](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolvePipelineDeployment(store, pipelines, req));
          ASSIGN_OR_RETURN(Json j, ParseObject(req.body));
          ASSIGN_OR_RETURN(store::TriggerRequest t, ParseTrigger(j, max_value));
          ASSIGN_OR_RETURN(model::DagRun dr, pipelines->Trigger(d, req.params.at("dag_id"), t));
          wake();
          return JsonResponse(200, DagRunJson(dr));
        }));

  r.Add("GET", run, Wrap([store, pipelines](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolvePipelineDeployment(store, pipelines, req));
          ASSIGN_OR_RETURN(model::DagRun dr, pipelines->GetRun(d, req.params.at("dag_id"),
                                                               req.params.at("dag_run_id")));
          return JsonResponse(200, DagRunJson(dr));
        }));

  r.Add("PATCH", run, Wrap([store, pipelines, wake](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolvePipelineDeployment(store, pipelines, req));
          ASSIGN_OR_RETURN(Json j, ParseObject(req.body));
          RETURN_IF_ERROR(CheckFields(j, {"state", "note"}));
          std::vector<std::string> mask = UpdateMask(req);
          RETURN_IF_ERROR(CheckMask(mask, {"state", "note"}));
          std::optional<std::string> state;
          if (InMask(mask, "state")) {
            RETURN_IF_ERROR(ReadOptString(j, "state", &state));
            if (state && *state != model::kRunQueued && *state != model::kRunSuccess &&
                *state != model::kRunFailed) {
              return InvalidArgument(
                  "field `state` must be one of queued, success, failed, got \"" + *state + "\"");
            }
          }
          // With an update_mask naming `note`, an absent note clears it (Airflow's PATCH).
          std::optional<std::optional<std::string>> note;
          if (InMask(mask, "note") && (j.contains("note") || !mask.empty())) {
            std::optional<std::string> text;
            RETURN_IF_ERROR(ReadOptString(j, "note", &text));
            if (text && text->size() > kMaxNoteLength) {
              return InvalidArgument("field `note` is longer than " +
                                     std::to_string(kMaxNoteLength) + " characters");
            }
            note = std::move(text);
          }
          const std::string& dag_id = req.params.at("dag_id");
          const std::string& run_id = req.params.at("dag_run_id");
          if (!state && !note) {
            ASSIGN_OR_RETURN(model::DagRun dr, pipelines->GetRun(d, dag_id, run_id));
            return JsonResponse(200, DagRunJson(dr));
          }
          ASSIGN_OR_RETURN(model::DagRun dr, pipelines->PatchRun(d, dag_id, run_id, state, note));
          if (state) wake();
          return JsonResponse(200, DagRunJson(dr));
        }));

  logs::LogStore* logs = ctx.logs;
  r.Add("DELETE", run, Wrap([store, pipelines, logs](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolvePipelineDeployment(store, pipelines, req));
          const std::string& dag_id = req.params.at("dag_id");
          const std::string& run_id = req.params.at("dag_run_id");
          // The run's task logs go with it, or a later run reusing its id would append to them.
          store::TiFilter all;
          all.page.limit = 1000000;
          ASSIGN_OR_RETURN(auto tis, pipelines->ListTaskInstances(d, dag_id, run_id, all));
          RETURN_IF_ERROR(pipelines->DeleteRun(d, dag_id, run_id));
          for (const model::TaskInstance& ti : tis.items) {
            for (int attempt = 1; logs != nullptr && attempt <= ti.try_number; ++attempt) {
              auto key = logs::TaskLogKey(d.value(), dag_id, run_id, ti.task_id, attempt);
              if (key.ok()) (void)logs->Remove(*key);
            }
          }
          return NoContent();
        }));

  r.Add("POST", run + "/clear",
        Wrap([store, pipelines, wake](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolvePipelineDeployment(store, pipelines, req));
          ASSIGN_OR_RETURN(Json j, ParseObject(req.body));
          RETURN_IF_ERROR(CheckFields(j, {"dry_run", "only_failed", "run_on_latest_version"}));
          store::ClearRequest c;
          c.dry_run = true;  // Airflow's default
          RETURN_IF_ERROR(ReadBool(j, "dry_run", &c.dry_run));
          RETURN_IF_ERROR(ReadBool(j, "only_failed", &c.only_failed));
          RETURN_IF_ERROR(ReadBool(j, "run_on_latest_version", &c.run_on_latest_version));
          const std::string& dag_id = req.params.at("dag_id");
          const std::string& run_id = req.params.at("dag_run_id");
          ASSIGN_OR_RETURN(std::vector<model::TaskInstance> tis,
                           pipelines->ClearRun(d, dag_id, run_id, c));
          if (c.dry_run) {
            return JsonResponse(200, TaskInstanceCollection(tis, static_cast<int64_t>(tis.size())));
          }
          wake();
          ASSIGN_OR_RETURN(model::DagRun dr, pipelines->GetRun(d, dag_id, run_id));
          return JsonResponse(200, DagRunJson(dr));
        }));
}

}  // namespace tandem::api
