// Airflow REST API v2 DAGs, per deployment: {kAirflowRoot}/dags[/{dag_id}].
//
// Shapes follow the Airflow spec (DAGResponse, DAGCollectionResponse, DAGPatchBody). A DAG
// comes from the deployment's bundle (one bundle, Airflow's "dags-folder"); its file is the
// path inside the bundle, so fileloc and relative_fileloc are the same. Pausing is the one
// change a client makes to a DAG. GET /dags filters by dag_id_pattern, paused and
// exclude_stale; tags, owners and the other filters of Airflow's list are ignored.
#include "api/context.h"
#include "api/errors.h"
#include "api/json_util.h"
#include "api/pipeline_json.h"
#include "crypto/secret_box.h"
#include "store/pipelines.h"

namespace tandem::api {
namespace {

using model::Dag;

Json ToJson(const Dag& d) {
  Json tags = Json::array();
  for (const auto& t : d.tags) {
    tags.push_back({{"name", t}, {"dag_id", d.dag_id}, {"dag_display_name", d.dag_id}});
  }
  return {{"dag_id", d.dag_id},
          {"dag_display_name", d.dag_id},
          {"is_paused", d.is_paused},
          {"is_stale", d.is_stale},
          {"last_parsed_time", TextOrNull(d.last_parsed_time)},
          {"last_expired", nullptr},
          {"bundle_name", kBundleName},
          {"bundle_version", TextOrNull(d.bundle_version)},
          {"relative_fileloc", d.fileloc},
          {"fileloc", d.fileloc},
          {"description", TextOrNull(d.description)},
          {"timetable_summary", d.timetable_summary ? Json(*d.timetable_summary) : Json(nullptr)},
          {"timetable_description", TextOrNull(d.timetable_description)},
          {"tags", tags},
          {"max_active_tasks", d.max_active_tasks},
          {"max_active_runs", d.max_active_runs},
          {"max_consecutive_failed_dag_runs", 0},
          {"has_task_concurrency_limits", d.has_task_concurrency_limits},
          {"has_import_errors", d.has_import_errors},
          {"next_dagrun_logical_date", TextOrNull(d.next_dagrun_logical_date)},
          {"next_dagrun_data_interval_start", TextOrNull(d.next_dagrun_data_interval_start)},
          {"next_dagrun_data_interval_end", TextOrNull(d.next_dagrun_data_interval_end)},
          {"next_dagrun_run_after", TextOrNull(d.next_dagrun_run_after)},
          {"owners", d.owners},
          // Airflow's token names the file for its dagSources endpoint; opaque to clients.
          {"file_token", Base64Encode(d.fileloc)}};
}

}  // namespace

void RegisterDagRoutes(Router& r, const ApiContext& ctx) {
  store::Store* store = ctx.store;
  store::Pipelines* pipelines = ctx.pipelines;
  std::function<void()> wake = ctx.wake_scheduler;
  const std::string base = std::string(kAirflowRoot) + "/dags";

  r.Add("GET", base, Wrap([store, pipelines](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolvePipelineDeployment(store, pipelines, req));
          store::DagFilter filter;
          ASSIGN_OR_RETURN(filter.page, ReadPage(req, "dag_id_pattern"));
          ASSIGN_OR_RETURN(filter.paused, QueryBool(req, "paused"));
          ASSIGN_OR_RETURN(std::optional<bool> exclude_stale, QueryBool(req, "exclude_stale"));
          filter.include_stale = !exclude_stale.value_or(true);
          ASSIGN_OR_RETURN(model::Page<Dag> p, pipelines->ListDags(d, filter));
          Json items = Json::array();
          for (const auto& x : p.items) items.push_back(ToJson(x));
          return JsonResponse(200, {{"dags", items}, {"total_entries", p.total}});
        }));

  r.Add("GET", base + "/{dag_id}", Wrap([store, pipelines](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolvePipelineDeployment(store, pipelines, req));
          ASSIGN_OR_RETURN(Dag dag, pipelines->GetDag(d, req.params.at("dag_id")));
          return JsonResponse(200, ToJson(dag));
        }));

  r.Add("PATCH", base + "/{dag_id}",
        Wrap([store, pipelines, wake](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolvePipelineDeployment(store, pipelines, req));
          ASSIGN_OR_RETURN(Json j, ParseObject(req.body));
          RETURN_IF_ERROR(CheckFields(j, {"is_paused"}, {"is_paused"}));
          bool paused = false;
          RETURN_IF_ERROR(ReadBool(j, "is_paused", &paused));
          std::vector<std::string> mask = UpdateMask(req);
          RETURN_IF_ERROR(CheckMask(mask, {"is_paused"}));
          const std::string& dag_id = req.params.at("dag_id");
          ASSIGN_OR_RETURN(Dag dag, InMask(mask, "is_paused")
                                        ? pipelines->SetPaused(d, dag_id, paused)
                                        : pipelines->GetDag(d, dag_id));
          if (!dag.is_paused) wake();  // an unpaused DAG may have runs due
          return JsonResponse(200, ToJson(dag));
        }));
}

}  // namespace tandem::api
