// Airflow REST API v2 XComs, per deployment:
// {kAirflowRoot}/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/xcomEntries[/{key}].
//
// Shapes follow the Airflow spec (XComCollectionResponse, XComResponseNative,
// XComResponseString). Values are stored as JSON text: an entry answers with the parsed value
// (XComResponseNative), or with that text when stringify=true (XComResponseString); deserialize
// changes nothing, since there is no pickled form. task_id "~" lists the XComs of every task of
// the run. Read-only: XComs are written by tasks through the Execution API.
#include "api/context.h"
#include "api/errors.h"
#include "api/json_util.h"
#include "api/pipeline_json.h"
#include "store/pipelines.h"

namespace tandem::api {
namespace {

using model::XCom;

// XComResponse, without the value.
Json ToJson(const XCom& x) {
  return {{"key", x.key},
          {"timestamp", x.timestamp},
          {"logical_date", TextOrNull(x.logical_date)},
          {"map_index", -1},
          {"task_id", x.task_id},
          {"dag_id", x.dag_id},
          {"run_id", x.run_id},
          {"dag_display_name", x.dag_id},
          {"task_display_name", x.task_id}};
}

}  // namespace

void RegisterXComRoutes(Router& r, const ApiContext& ctx) {
  store::Store* store = ctx.store;
  store::Pipelines* pipelines = ctx.pipelines;
  const std::string base =
      std::string(kAirflowRoot) +
      "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/xcomEntries";

  r.Add("GET", base, Wrap([store, pipelines](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolvePipelineDeployment(store, pipelines, req));
          RETURN_IF_ERROR(CheckMapIndex(req));
          ASSIGN_OR_RETURN(model::PageRequest page, ReadPage(req, "xcom_key_pattern"));
          ASSIGN_OR_RETURN(
              model::Page<XCom> p,
              pipelines->ListXComs(d, req.params.at("dag_id"), req.params.at("dag_run_id"),
                                   req.params.at("task_id"), page));
          Json items = Json::array();
          for (const auto& x : p.items) items.push_back(ToJson(x));
          return JsonResponse(200, {{"xcom_entries", items}, {"total_entries", p.total}});
        }));

  r.Add("GET", base + "/{xcom_key}",
        Wrap([store, pipelines](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolvePipelineDeployment(store, pipelines, req));
          RETURN_IF_ERROR(CheckMapIndex(req));
          ASSIGN_OR_RETURN(std::optional<bool> stringify, QueryBool(req, "stringify"));
          ASSIGN_OR_RETURN(std::optional<bool> deserialize, QueryBool(req, "deserialize"));
          (void)deserialize;  // checked, then ignored: values are JSON already
          ASSIGN_OR_RETURN(
              XCom x, pipelines->GetXCom(d, req.params.at("dag_id"), req.params.at("dag_run_id"),
                                         req.params.at("task_id"), req.params.at("xcom_key")));
          Json j = ToJson(x);
          if (stringify.value_or(false)) {
            j["value"] = x.value;
          } else {
            auto parsed = ParseJson(x.value, "the stored XCom value");
            j["value"] = parsed.ok() ? std::move(parsed).value() : Json(x.value);
          }
          return JsonResponse(200, j);
        }));
}

}  // namespace tandem::api
