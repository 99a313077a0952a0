// Airflow REST API v2 import errors, per deployment: {kAirflowRoot}/importErrors[/{id}].
//
// Shapes follow the Airflow spec (ImportErrorResponse, ImportErrorCollectionResponse). An
// import error is a bundle file that did not parse; its stack_trace is "<file>:<line>: <message>"
// (no line when the error is about the whole file). They are replaced at every deploy.
#include "api/context.h"
#include "api/errors.h"
#include "api/json_util.h"
#include "api/pipeline_json.h"
#include "store/pipelines.h"

namespace tandem::api {
namespace {

using model::ImportErrorRow;

Json ToJson(const ImportErrorRow& e) {
  std::string where = e.filename;
  if (e.line > 0) where += ":" + std::to_string(e.line);
  return {{"import_error_id", e.id},
          {"timestamp", e.timestamp},
          {"filename", e.filename},
          {"bundle_name", kBundleName},
          {"stack_trace", where + ": " + e.message}};
}

}  // namespace

void RegisterImportErrorRoutes(Router& r, const ApiContext& ctx) {
  store::Store* store = ctx.store;
  store::Pipelines* pipelines = ctx.pipelines;
  const std::string base = std::string(kAirflowRoot) + "/importErrors";

  r.Add("GET", base, Wrap([store, pipelines](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolvePipelineDeployment(store, pipelines, req));
          ASSIGN_OR_RETURN(model::PageRequest page, ReadPage(req, nullptr));
          ASSIGN_OR_RETURN(model::Page<ImportErrorRow> p, pipelines->ListImportErrors(d, page));
          Json items = Json::array();
          for (const auto& e : p.items) items.push_back(ToJson(e));
          return JsonResponse(200, {{"import_errors", items}, {"total_entries", p.total}});
        }));

  r.Add("GET", base + "/{import_error_id}",
        Wrap([store, pipelines](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolvePipelineDeployment(store, pipelines, req));
          ASSIGN_OR_RETURN(int64_t id, PathInt(req, "import_error_id"));
          ASSIGN_OR_RETURN(ImportErrorRow e, pipelines->GetImportError(d, id));
          return JsonResponse(200, ToJson(e));
        }));
}

}  // namespace tandem::api
