// Airflow REST API v2 variables, per deployment: {kAirflowRoot}/variables[/{variable_key}].
//
// Shapes follow the Airflow spec (VariableBody, VariableResponse, VariableCollectionResponse).
// A variable is secret when its key contains one of Airflow's sensitive words (password,
// secret, api_key, ...) or when the body says "is_secret": true (tandem's one extension to
// VariableBody). Secret values are sealed at rest and returned as "***"; is_encrypted says so.
// A secret variable cannot be made plain again (that would reveal it), and a PATCH that sends
// "***" back as the value of a secret variable keeps the stored value.
#include "api/bulk.h"
#include "api/context.h"
#include "api/errors.h"
#include "api/json_util.h"
#include "model/validate.h"
#include "store/store.h"

namespace tandem::api {
namespace {

using model::Variable;

Json ToJson(const Variable& v) {
  Json desc = v.description ? Json(*v.description) : Json(nullptr);
  return {{"key", v.key},
          {"value", v.is_secret ? kMask : v.value},
          {"description", desc},
          {"is_encrypted", v.is_secret}};
}

// Airflow keeps the text of a string value and the JSON text of anything else.
std::string ValueText(const Json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

Status ValidateVariable(const Variable& v, size_t max_value) {
  RETURN_IF_ERROR(model::ValidateVariableKey(v.key));
  RETURN_IF_ERROR(model::ValidateSize("value", v.value.size(), max_value));
  return model::ValidateSize("description", v.description ? v.description->size() : 0, max_value);
}

const std::initializer_list<std::string_view> kBodyFields = {"key", "value", "description",
                                                             "is_secret"};

// A new variable from a VariableBody (POST, bulk create).
Result<Variable> ParseVariable(const Json& j, size_t max_value) {
  RETURN_IF_ERROR(CheckFields(j, kBodyFields, {"key", "value"}));
  Variable v;
  RETURN_IF_ERROR(ReadString(j, "key", &v.key));
  v.value = ValueText(j["value"]);
  RETURN_IF_ERROR(ReadOptString(j, "description", &v.description));
  RETURN_IF_ERROR(ReadBool(j, "is_secret", &v.is_secret));
  v.is_secret = v.is_secret || model::IsSensitiveName(v.key);
  RETURN_IF_ERROR(ValidateVariable(v, max_value));
  return v;
}

// Applies the fields of a VariableBody named by `mask` (all when empty) to a stored variable
// (PATCH, bulk update).
Status ApplyVariable(const Json& j, const std::vector<std::string>& mask, Variable& x,
                     size_t max_value) {
  const bool was_secret = x.is_secret;
  // "***" is how a secret reads back: writing it back leaves the value as it is.
  if (InMask(mask, "value") && !(was_secret && j["value"] == kMask)) {
    x.value = ValueText(j["value"]);
  }
  if (InMask(mask, "description")) {
    RETURN_IF_ERROR(ReadOptString(j, "description", &x.description));
  }
  if (InMask(mask, "is_secret")) RETURN_IF_ERROR(ReadBool(j, "is_secret", &x.is_secret));
  x.is_secret = x.is_secret || model::IsSensitiveName(x.key);
  if (was_secret && !x.is_secret) {
    return FailedPrecondition(
        "a secret variable stays secret: delete it and create it again "
        "to store a plain value");
  }
  return ValidateVariable(x, max_value);
}

}  // namespace

void RegisterVariableRoutes(Router& r, const ApiContext& ctx) {
  store::Store* store = ctx.store;
  size_t max_value = ctx.max_value_bytes;
  const std::string base = std::string(kAirflowRoot) + "/variables";

  r.Add("GET", base, Wrap([store](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolveDeployment(*store, req));
          ASSIGN_OR_RETURN(model::PageRequest page, ReadPage(req, "variable_key_pattern"));
          ASSIGN_OR_RETURN(model::Page<Variable> p, store->ListVariables(d, page));
          Json items = Json::array();
          for (const auto& v : p.items) items.push_back(ToJson(v));
          return JsonResponse(200, {{"variables", items}, {"total_entries", p.total}});
        }));

  r.Add("POST", base, Wrap([store, max_value](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolveDeployment(*store, req));
          ASSIGN_OR_RETURN(Json j, ParseObject(req.body));
          ASSIGN_OR_RETURN(Variable v, ParseVariable(j, max_value));
          RETURN_IF_ERROR(store->CreateVariable(d, v));
          return JsonResponse(201, ToJson(v));
        }));

  r.Add("PATCH", base, Wrap([store, max_value](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolveDeployment(*store, req));
          BulkResource bulk{
              "variables",
              "keys",
              [max_value](const Json& e) -> Result<std::string> {
                ASSIGN_OR_RETURN(Variable v, ParseVariable(e, max_value));
                return v.key;
              },
              ExistsBy([store, d](const std::string& key) { return store->GetVariable(d, key); }),
              [store, d, max_value](const Json& e) -> Status {
                ASSIGN_OR_RETURN(Variable v, ParseVariable(e, max_value));
                return store->CreateVariable(d, v);
              },
              [store, d, max_value](const Json& e) -> Status {
                return store
                    ->UpdateVariable(
                        d, e["key"].get<std::string>(),
                        [&](Variable& x) { return ApplyVariable(e, {}, x, max_value); })
                    .status();
              },
              [store, d](const std::string& key) { return store->DeleteVariable(d, key); }};
          return HandleBulk(req, bulk);
        }));

  r.Add("GET", base + "/{variable_key}", Wrap([store](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolveDeployment(*store, req));
          ASSIGN_OR_RETURN(Variable v, store->GetVariable(d, req.params.at("variable_key")));
          return JsonResponse(200, ToJson(v));
        }));

  r.Add("PATCH", base + "/{variable_key}",
        Wrap([store, max_value](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolveDeployment(*store, req));
          ASSIGN_OR_RETURN(Json j, ParseObject(req.body));
          RETURN_IF_ERROR(CheckFields(j, kBodyFields, {"key", "value"}));
          const std::string& key = req.params.at("variable_key");
          if (j["key"] != key) {
            return FailedPrecondition(
                "Invalid body, key from request body doesn't match uri parameter");
          }
          std::vector<std::string> mask = UpdateMask(req);
          RETURN_IF_ERROR(CheckMask(mask, {"value", "description", "is_secret"}));
          ASSIGN_OR_RETURN(Variable v, store->UpdateVariable(d, key, [&](Variable& x) {
            return ApplyVariable(j, mask, x, max_value);
          }));
          return JsonResponse(200, ToJson(v));
        }));

  r.Add("DELETE", base + "/{variable_key}", Wrap([store](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolveDeployment(*store, req));
          RETURN_IF_ERROR(store->DeleteVariable(d, req.params.at("variable_key")));
          return NoContent();
        }));
}

}  // namespace tandem::api
