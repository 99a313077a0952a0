// Airflow REST API v2 pools, per deployment: {kAirflowRoot}/pools[/{pool_name}].
//
// Shapes follow the Airflow spec (PoolBody, PoolPatchBody, PoolResponse, ...). Every
// deployment has `default_pool` (slots from its config); it cannot be deleted or renamed.
// Slot usage counts the task instances holding the pool's slots: occupied = running + queued
// (Airflow's definition), open = slots - occupied, and -1 (unlimited) pools report open -1.
#include <algorithm>

#include "api/bulk.h"
#include "api/context.h"
#include "api/errors.h"
#include "api/json_util.h"
#include "model/validate.h"
#include "store/store.h"

namespace tandem::api {
namespace {

using model::Pool;

Json ToJson(const Pool& p) {
  return {{"name", p.name},
          {"slots", p.slots},
          {"description", p.description ? Json(*p.description) : Json(nullptr)},
          {"include_deferred", p.include_deferred},
          {"occupied_slots", p.running + p.queued},
          {"running_slots", p.running},
          {"queued_slots", p.queued},
          {"scheduled_slots", p.scheduled},
          {"deferred_slots", 0},
          {"open_slots", p.slots < 0 ? -1 : std::max(0, p.slots - p.running - p.queued)}};
}

Status Validate(const Pool& p, size_t max_value) {
  RETURN_IF_ERROR(model::ValidatePoolName(p.name));
  RETURN_IF_ERROR(model::ValidatePoolSlots(p.slots));
  return model::ValidateSize("description", p.description ? p.description->size() : 0, max_value);
}

// A pool from a PoolBody (POST, bulk create and update).
Result<Pool> ParsePool(const Json& j, size_t max_value) {
  RETURN_IF_ERROR(
      CheckFields(j, {"name", "slots", "description", "include_deferred"}, {"name", "slots"}));
  Pool p;
  RETURN_IF_ERROR(ReadString(j, "name", &p.name));
  RETURN_IF_ERROR(ReadInt(j, "slots", &p.slots));
  RETURN_IF_ERROR(ReadOptString(j, "description", &p.description));
  RETURN_IF_ERROR(ReadBool(j, "include_deferred", &p.include_deferred));
  RETURN_IF_ERROR(Validate(p, max_value));
  return p;
}

}  // namespace

void RegisterPoolRoutes(Router& r, const ApiContext& ctx) {
  store::Store* store = ctx.store;
  size_t max_value = ctx.max_value_bytes;
  const std::string base = std::string(kAirflowRoot) + "/pools";

  r.Add("GET", base, Wrap([store](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolveDeployment(*store, req));
          ASSIGN_OR_RETURN(model::PageRequest page, ReadPage(req, "pool_name_pattern"));
          ASSIGN_OR_RETURN(model::Page<Pool> p, store->ListPools(d, page));
          Json items = Json::array();
          for (const auto& x : p.items) items.push_back(ToJson(x));
          return JsonResponse(200, {{"pools", items}, {"total_entries", p.total}});
        }));

  r.Add("POST", base, Wrap([store, max_value](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolveDeployment(*store, req));
          ASSIGN_OR_RETURN(Json j, ParseObject(req.body));
          ASSIGN_OR_RETURN(Pool p, ParsePool(j, max_value));
          RETURN_IF_ERROR(store->CreatePool(d, p));
          return JsonResponse(201, ToJson(p));
        }));

  r.Add("PATCH", base, Wrap([store, max_value](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolveDeployment(*store, req));
          BulkResource bulk{
              "pools",
              "pool names",
              [max_value](const Json& e) -> Result<std::string> {
                ASSIGN_OR_RETURN(Pool p, ParsePool(e, max_value));
                return p.name;
              },
              ExistsBy([store, d](const std::string& key) { return store->GetPool(d, key); }),
              [store, d, max_value](const Json& e) -> Status {
                ASSIGN_OR_RETURN(Pool p, ParsePool(e, max_value));
                return store->CreatePool(d, p);
              },
              [store, d, max_value](const Json& e) -> Status {
                ASSIGN_OR_RETURN(Pool p, ParsePool(e, max_value));
                return store
                    ->UpdatePool(d, p.name,
                                 [&](Pool& x) {
                                   x.slots = p.slots;
                                   x.description = p.description;
                                   x.include_deferred = p.include_deferred;
                                   return Status::Ok();
                                 })
                    .status();
              },
              [store, d](const std::string& name) { return store->DeletePool(d, name); }};
          return HandleBulk(req, bulk);
        }));

  r.Add("GET", base + "/{pool_name}", Wrap([store](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolveDeployment(*store, req));
          ASSIGN_OR_RETURN(Pool p, store->GetPool(d, req.params.at("pool_name")));
          return JsonResponse(200, ToJson(p));
        }));

  r.Add("PATCH", base + "/{pool_name}",
        Wrap([store, max_value](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolveDeployment(*store, req));
          ASSIGN_OR_RETURN(Json j, ParseObject(req.body));
          RETURN_IF_ERROR(CheckFields(j, {"pool", "slots", "description", "include_deferred"}));
          std::vector<std::string> mask = UpdateMask(req);
          RETURN_IF_ERROR(
              CheckMask(mask, {"pool", "name", "slots", "description", "include_deferred"}));
          ASSIGN_OR_RETURN(
              Pool p, store->UpdatePool(d, req.params.at("pool_name"), [&](Pool& x) -> Status {
                if (InMask(mask, "pool") || InMask(mask, "name")) {
                  if (j.contains("pool") && !j["pool"].is_null()) {
                    RETURN_IF_ERROR(ReadString(j, "pool", &x.name));
                  }
                }
                if (InMask(mask, "slots") && j.contains("slots") && !j["slots"].is_null()) {
                  RETURN_IF_ERROR(ReadInt(j, "slots", &x.slots));
                }
                if (InMask(mask, "description")) {
                  RETURN_IF_ERROR(ReadOptString(j, "description", &x.description));
                }
                if (InMask(mask, "include_deferred") && j.contains("include_deferred") &&
                    !j["include_deferred"].is_null()) {
                  RETURN_IF_ERROR(ReadBool(j, "include_deferred", &x.include_deferred));
                }
                return Validate(x, max_value);
              }));
          return JsonResponse(200, ToJson(p));
        }));

  r.Add("DELETE", base + "/{pool_name}", Wrap([store](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolveDeployment(*store, req));
          RETURN_IF_ERROR(store->DeletePool(d, req.params.at("pool_name")));
          return NoContent();
        }));
}

}  // namespace tandem::api
