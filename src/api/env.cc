// /api/v1/deployments/{deployment}/env: the deployment's environment variables.
//   GET                 {"env_vars": [{"key", "value", "is_secret"}], "total_entries"}
//   PUT    .../env/KEY  {"value": "...", "is_secret": false}  -> the variable
//   GET    .../env/KEY  DELETE .../env/KEY
// Secret values are sealed at rest and shown as "***"; a PUT of "***" to a secret keeps it.
#include "api/context.h"
#include "api/errors.h"
#include "api/json_util.h"
#include "model/validate.h"
#include "store/store.h"

namespace tandem::api {
namespace {

Json ToJson(const model::EnvVar& v) {
  return {{"key", v.key}, {"value", v.is_secret ? kMask : v.value}, {"is_secret", v.is_secret}};
}

}  // namespace

void RegisterEnvRoutes(Router& r, const ApiContext& ctx) {
  store::Store* store = ctx.store;
  size_t max_value = ctx.max_value_bytes;
  const std::string base = "/api/v1/deployments/{deployment}/env";

  r.Add("GET", base, Wrap([store](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolveDeployment(*store, req));
          ASSIGN_OR_RETURN(std::vector<model::EnvVar> vars, store->ListEnv(d));
          Json items = Json::array();
          for (const auto& v : vars) items.push_back(ToJson(v));
          return JsonResponse(200, {{"env_vars", items}, {"total_entries", vars.size()}});
        }));

  r.Add("GET", base + "/{key}", Wrap([store](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolveDeployment(*store, req));
          ASSIGN_OR_RETURN(std::vector<model::EnvVar> vars, store->ListEnv(d));
          for (const auto& v : vars) {
            if (v.key == req.params.at("key")) return JsonResponse(200, ToJson(v));
          }
          return NotFound("The env var `" + req.params.at("key") + "` was not found");
        }));

  r.Add("PUT", base + "/{key}", Wrap([store, max_value](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolveDeployment(*store, req));
          ASSIGN_OR_RETURN(Json j, ParseObject(req.body));
          RETURN_IF_ERROR(CheckFields(j, {"value", "is_secret"}, {"value"}));
          model::EnvVar v{req.params.at("key"), "", false};
          RETURN_IF_ERROR(ReadString(j, "value", &v.value));
          RETURN_IF_ERROR(ReadBool(j, "is_secret", &v.is_secret));
          RETURN_IF_ERROR(model::ValidateEnvKey(v.key));
          if (v.value == kMask) {
            // Writing back what was read: a secret keeps its stored value and stays secret.
            ASSIGN_OR_RETURN(std::vector<model::EnvVar> vars, store->ListEnv(d));
            for (const auto& old : vars) {
              if (old.key == v.key && old.is_secret) v = old;
            }
          }
          RETURN_IF_ERROR(model::ValidateSize("value", v.value.size(), max_value));
          RETURN_IF_ERROR(store->SetEnv(d, v));
          return JsonResponse(200, ToJson(v));
        }));

  r.Add("DELETE", base + "/{key}", Wrap([store](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolveDeployment(*store, req));
          RETURN_IF_ERROR(store->UnsetEnv(d, req.params.at("key")));
          return NoContent();
        }));
}

}  // namespace tandem::api
