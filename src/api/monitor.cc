// Airflow REST API v2 monitoring, per deployment: {kAirflowRoot}/monitor/health and
// {kAirflowRoot}/version.
//
// Shapes follow the Airflow spec (HealthInfoResponse, VersionInfo). The metadatabase is
// healthy when the deployment can be read from PostgreSQL. The scheduler runs inside the
// region agent that answers: it is healthy once it has completed a pass, and its heartbeat is
// when it last did. There is no triggerer and no separate DAG processor. The version is
// tandem's (CMake's PROJECT_VERSION).
#include "api/context.h"
#include "api/errors.h"
#include "api/json_util.h"

#ifndef TANDEM_VERSION
#error "TANDEM_VERSION must be defined by the build (src/api/CMakeLists.txt)"
#endif

namespace tandem::api {

void RegisterMonitorRoutes(Router& r, const ApiContext& ctx) {
  store::Store* store = ctx.store;
  std::function<std::optional<std::string>()> heartbeat = ctx.scheduler_heartbeat;

  r.Add("GET", std::string(kAirflowRoot) + "/monitor/health",
        Wrap([store, heartbeat](const Request& req) -> Result<Response> {
          auto d = ResolveDeployment(*store, req);
          // An unknown deployment is still a 404; any other failure is the database's.
          if (!d.ok() && d.status().code() == Code::kNotFound) return d.status();
          std::optional<std::string> beat = heartbeat ? heartbeat() : std::nullopt;
          Json health = {
              {"metadatabase", {{"status", d.ok() ? "healthy" : "unhealthy"}}},
              {"scheduler",
               {{"status", beat ? "healthy" : "unhealthy"},
                {"latest_scheduler_heartbeat", beat ? Json(*beat) : Json(nullptr)}}},
              {"triggerer", {{"status", nullptr}, {"latest_triggerer_heartbeat", nullptr}}},
              {"dag_processor", nullptr}};
          return JsonResponse(200, health);
        }));

  r.Add("GET", std::string(kAirflowRoot) + "/version",
        Wrap([store](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolveDeployment(*store, req));
          (void)d;  // the version is the region's; the deployment must exist all the same
          return JsonResponse(200, {{"version", TANDEM_VERSION}, {"git_version", nullptr}});
        }));
}

}  // namespace tandem::api
