// /api/v1/deployments: create, list, get, update (merge patch), delete.
//
// A deployment is addressed by its id or its name. Bodies:
//   {"name": "etl", "description": "...",
//    "config": {"worker_slots": 16, "default_pool_slots": 128,
//               "schedule": {"catchup": false, "max_active_runs": 16, "max_active_tasks": 16}},
//    "metrics_export": {"enabled": false, "format": "prometheus", "endpoint": "",
//                       "interval_seconds": 60}}
// Only `name` is required at creation; PATCH changes the fields it names. id and namespace
// are assigned once and never change.
#include "api/context.h"
#include "api/errors.h"
#include "api/json_util.h"
#include "model/validate.h"
#include "store/identities.h"
#include "store/store.h"

namespace tandem::api {
namespace {

using model::Deployment;

Json ToJson(const Deployment& d) {
  return {{"id", d.id.value()},
          {"name", d.name},
          {"namespace", d.ns},
          {"workspace_id", d.workspace_id},
          {"description", d.description},
          {"config",
           {{"worker_slots", d.config.worker_slots},
            {"default_pool_slots", d.config.default_pool_slots},
            {"schedule",
             {{"catchup", d.config.schedule.catchup},
              {"max_active_runs", d.config.schedule.max_active_runs},
              {"max_active_tasks", d.config.schedule.max_active_tasks}}}}},
          {"metrics_export",
           {{"enabled", d.metrics.enabled},
            {"format", d.metrics.format},
            {"endpoint", d.metrics.endpoint},
            {"interval_seconds", d.metrics.interval_seconds}}},
          {"created_at", d.created_at},
          {"updated_at", d.updated_at}};
}

// Applies the fields present in `j` to `d`, then validates the whole result.
Status Apply(const Json& j, Deployment& d, size_t max_value_bytes) {
  RETURN_IF_ERROR(CheckFields(j, {"name", "description", "config", "metrics_export"}));
  RETURN_IF_ERROR(ReadString(j, "name", &d.name));
  RETURN_IF_ERROR(ReadString(j, "description", &d.description));
  if (auto c = j.find("config"); c != j.end()) {
    RETURN_IF_ERROR(
        CheckFields(*c, {"worker_slots", "default_pool_slots", "schedule"}, {}, "config."));
    RETURN_IF_ERROR(ReadInt(*c, "worker_slots", &d.config.worker_slots, "config."));
    RETURN_IF_ERROR(ReadInt(*c, "default_pool_slots", &d.config.default_pool_slots, "config."));
    if (auto s = c->find("schedule"); s != c->end()) {
      const char* w = "config.schedule.";
      RETURN_IF_ERROR(CheckFields(*s, {"catchup", "max_active_runs", "max_active_tasks"}, {}, w));
      RETURN_IF_ERROR(ReadBool(*s, "catchup", &d.config.schedule.catchup, w));
      RETURN_IF_ERROR(ReadInt(*s, "max_active_runs", &d.config.schedule.max_active_runs, w));
      RETURN_IF_ERROR(ReadInt(*s, "max_active_tasks", &d.config.schedule.max_active_tasks, w));
    }
  }
  if (auto m = j.find("metrics_export"); m != j.end()) {
    const char* w = "metrics_export.";
    RETURN_IF_ERROR(CheckFields(*m, {"enabled", "format", "endpoint", "interval_seconds"}, {}, w));
    RETURN_IF_ERROR(ReadBool(*m, "enabled", &d.metrics.enabled, w));
    RETURN_IF_ERROR(ReadString(*m, "format", &d.metrics.format, w));
    RETURN_IF_ERROR(ReadString(*m, "endpoint", &d.metrics.endpoint, w));
    RETURN_IF_ERROR(ReadInt(*m, "interval_seconds", &d.metrics.interval_seconds, w));
  }
  RETURN_IF_ERROR(model::ValidateDeploymentName(d.name));
  RETURN_IF_ERROR(model::ValidateSize("description", d.description.size(), max_value_bytes));
  RETURN_IF_ERROR(model::ValidateConfig(d.config));
  return model::ValidateMetricsExport(d.metrics);
}

}  // namespace

void RegisterDeploymentRoutes(Router& r, const ApiContext& ctx) {
  store::Store* store = ctx.store;
  size_t max_value = ctx.max_value_bytes;

  // Each principal lists the deployments it may read: all of them with a platform role, else
  // those its workspace and deployment roles reach (filtered before paging, so totals agree).
  r.Add("GET", "/api/v1/deployments", Wrap([store](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(model::PageRequest page, ReadPage(req, "name_pattern"));
          const auth::Principal& who = *req.principal;
          if (auth::PlatformRole(who)) {
            ASSIGN_OR_RETURN(model::Page<Deployment> p, store->ListDeployments(page));
            Json items = Json::array();
            for (const auto& d : p.items) items.push_back(ToJson(d));
            return JsonResponse(200, {{"deployments", items}, {"total_entries", p.total}});
          }
          model::PageRequest all = page;
          all.offset = 0;
          all.limit = 1000000;
          ASSIGN_OR_RETURN(model::Page<Deployment> p, store->ListDeployments(all));
          Json items = Json::array();
          int64_t seen = 0;
          for (const auto& d : p.items) {
            if (!auth::DeploymentRole(who, {d.workspace_id, d.id.value()})) continue;
            if (seen >= page.offset && static_cast<int64_t>(items.size()) < page.limit) {
              items.push_back(ToJson(d));
            }
            ++seen;
          }
          return JsonResponse(200, {{"deployments", items}, {"total_entries", seen}});
        }));

  // `workspace` (a name or an id; `default` when absent) places it, on creation only.
  r.Add(
      "POST", "/api/v1/deployments",
      Wrap([store, identities = ctx.identities, max_value](const Request& req) -> Result<Response> {
        ASSIGN_OR_RETURN(Json j, ParseObject(req.body));
        RETURN_IF_ERROR(CheckFields(
            j, {"name", "description", "config", "metrics_export", "workspace"}, {"name"}));
        Deployment d;
        std::string workspace = "default";
        RETURN_IF_ERROR(ReadString(j, "workspace", &workspace));
        ASSIGN_OR_RETURN(store::Workspace ws, identities->GetWorkspace(workspace));
        d.workspace_id = ws.id;
        Json rest = j;
        rest.erase("workspace");
        RETURN_IF_ERROR(Apply(rest, d, max_value));
        ASSIGN_OR_RETURN(Deployment created, store->CreateDeployment(d));
        return JsonResponse(201, ToJson(created));
      }));

  r.Add("GET", "/api/v1/deployments/{deployment}",
        Wrap([store](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(Deployment d, store->GetDeployment(req.params.at("deployment")));
          return JsonResponse(200, ToJson(d));
        }));

  r.Add("PATCH", "/api/v1/deployments/{deployment}",
        Wrap([store, max_value](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(Json j, ParseObject(req.body));
          ASSIGN_OR_RETURN(Deployment d,
                           store->UpdateDeployment(req.params.at("deployment"),
                                                   [&](Deployment& x) {
                                                     return Apply(j, x, max_value);
                                                   }));
          return JsonResponse(200, ToJson(d));
        }));

  r.Add("DELETE", "/api/v1/deployments/{deployment}",
        Wrap([store](const Request& req) -> Result<Response> {
          RETURN_IF_ERROR(store->DeleteDeployment(req.params.at("deployment")));
          return NoContent();
        }));
}

}  // namespace tandem::api
