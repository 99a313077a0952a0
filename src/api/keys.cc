// The keyring of the keys that seal secrets at rest (docs/security.md, "Keys"), for the
// platform's owners: GET /api/v1/keys lists the data keys (never their material) and how many
// secrets each seals; POST /api/v1/keys/rotate makes a new key active, reseals every secret under
// it while the platform runs, and retires the keys no secret uses any more.
#include "api/context.h"
#include "api/errors.h"
#include "api/json_util.h"
#include "store/store.h"

namespace tandem::api {
namespace {

Json DataKeyJson(const store::DataKey& k) {
  return {{"id", k.id.value()},
          {"state", k.state},
          {"created_at", k.created_at},
          {"retired_at", OptJson(k.retired_at)},
          {"values", k.values}};
}

}  // namespace

void RegisterKeyRoutes(Router& r, const ApiContext& ctx) {
  r.Add("GET", "/api/v1/keys", Wrap([ctx](const Request&) -> Result<Response> {
          ASSIGN_OR_RETURN(store::KeyringView ring, ctx.store->ListKeys());
          Json keys = Json::array();
          for (const store::DataKey& k : ring.keys) keys.push_back(DataKeyJson(k));
          return JsonResponse(200, {{"keys", keys},
                                    {"total_entries", keys.size()},
                                    {"unkeyed_values", ring.unkeyed_values}});
        }));
  r.Add("POST", "/api/v1/keys/rotate", Wrap([ctx](const Request& req) -> Result<Response> {
          if (!req.body.empty()) {
            ASSIGN_OR_RETURN(Json j, ParseObject(req.body));
            RETURN_IF_ERROR(CheckFields(j, {}, {}));
          }
          ASSIGN_OR_RETURN(store::KeyRotation rot, ctx.store->RotateKey());
          Json retired = Json::array();
          for (KeyId id : rot.retired) retired.push_back(id.value());
          return JsonResponse(
              200,
              {{"key", DataKeyJson(rot.key)}, {"resealed", rot.resealed}, {"retired", retired}});
        }));
}

}  // namespace tandem::api
