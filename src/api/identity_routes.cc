// Who is asking and what they may hand out: /api/v1/whoami, workspaces, and API tokens on each
// scope — /api/v1/tokens (the platform's, for its owners), /api/v1/workspaces/{workspace}/tokens
// (for the workspace's admins), /api/v1/deployments/{deployment}/tokens (the deployment's
// admins). A token is shown once, in the answer that made it; lists show what it is, never it.
#include "api/context.h"
#include "api/errors.h"
#include "api/json_util.h"
#include "auth/api_token.h"
#include "store/identities.h"
#include "store/store.h"

namespace tandem::api {
namespace {

// A year: a token for longer is a token nobody remembers to rotate.
constexpr int64_t kMaxTokenSeconds = 366LL * 24 * 3600;

Json BindingJson(const auth::Binding& b) {
  return {{"scope", auth::ScopeName(b.scope)},
          {"scope_id", b.scope_id.empty() ? Json(nullptr) : Json(b.scope_id)},
          {"role", auth::RoleName(b.role)}};
}

Json TokenJson(const store::ApiToken& t) {
  auto opt = [](const std::optional<std::string>& s) { return s ? Json(*s) : Json(nullptr); };
  return {{"id", t.id},
          {"name", t.name},
          {"description", t.description},
          {"scope", auth::ScopeName(t.binding.scope)},
          {"scope_id", t.binding.scope_id.empty() ? Json(nullptr) : Json(t.binding.scope_id)},
          {"role", auth::RoleName(t.binding.role)},
          {"created_by", t.created_by},
          {"created_at", t.created_at},
          {"expires_at", opt(t.expires_at)},
          {"revoked_at", opt(t.revoked_at)}};
}

Json WorkspaceJson(const store::Workspace& w) {
  return {
      {"id", w.id}, {"name", w.name}, {"description", w.description}, {"created_at", w.created_at}};
}

// The scope a token route acts on: the platform, or the workspace or deployment of its path.
Result<auth::Binding> ScopeOf(const ApiContext& ctx, const Request& req, auth::Scope scope) {
  auth::Binding b;
  b.scope = scope;
  if (scope == auth::Scope::kWorkspace) {
    ASSIGN_OR_RETURN(store::Workspace w, ctx.identities->GetWorkspace(req.params.at("workspace")));
    b.scope_id = w.id;
  } else if (scope == auth::Scope::kDeployment) {
    ASSIGN_OR_RETURN(auth::Target t, ctx.identities->TargetOf(req.params.at("deployment")));
    b.scope_id = t.deployment_id;
  }
  return b;
}

void RegisterTokenRoutes(Router& r, const ApiContext& ctx, const std::string& base,
                         auth::Scope scope) {
  r.Add("GET", base, Wrap([ctx, scope](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(auth::Binding b, ScopeOf(ctx, req, scope));
          ASSIGN_OR_RETURN(std::vector<store::ApiToken> ts,
                           ctx.identities->ListTokens(scope, b.scope_id));
          Json items = Json::array();
          for (const store::ApiToken& t : ts) items.push_back(TokenJson(t));
          return JsonResponse(200, {{"tokens", items}, {"total_entries", items.size()}});
        }));
  r.Add("POST", base, Wrap([ctx, scope](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(Json j, ParseObject(req.body));
          RETURN_IF_ERROR(CheckFields(j, {"name", "role", "description", "expires_in_seconds"},
                                      {"name", "role"}));
          store::ApiToken t;
          ASSIGN_OR_RETURN(t.binding, ScopeOf(ctx, req, scope));
          RETURN_IF_ERROR(ReadString(j, "name", &t.name));
          if (t.name.empty() || t.name.size() > 100) {
            return InvalidArgument("field `name` must be 1 to 100 characters");
          }
          RETURN_IF_ERROR(ReadString(j, "description", &t.description));
          std::string role;
          RETURN_IF_ERROR(ReadString(j, "role", &role));
          ASSIGN_OR_RETURN(t.binding.role, auth::ParseRole(scope, role));
          std::optional<int64_t> expires;
          if (j.contains("expires_in_seconds") && !j["expires_in_seconds"].is_null()) {
            if (!j["expires_in_seconds"].is_number_integer() ||
                j["expires_in_seconds"].get<int64_t>() < 1 ||
                j["expires_in_seconds"].get<int64_t>() > kMaxTokenSeconds) {
              return InvalidArgument("field `expires_in_seconds` must be an integer from 1 to " +
                                     std::to_string(kMaxTokenSeconds) + " (a year)");
            }
            expires = j["expires_in_seconds"].get<int64_t>();
          }
          t.created_by = req.principal ? req.principal->name : "";
          const auth::TokenParts parts = auth::NewToken();
          t.id = parts.id;
          ASSIGN_OR_RETURN(store::ApiToken made,
                           ctx.identities->CreateToken(t, auth::SecretHash(parts.secret), expires));
          Json out = TokenJson(made);
          out["token"] = auth::FormatToken(parts);  // the only time it is shown
          return JsonResponse(201, out);
        }));
  r.Add("DELETE", base + "/{token_id}", Wrap([ctx, scope](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(auth::Binding b, ScopeOf(ctx, req, scope));
          ASSIGN_OR_RETURN(store::ApiToken t, ctx.identities->RevokeToken(
                                                  scope, b.scope_id, req.params.at("token_id")));
          return JsonResponse(200, TokenJson(t));
        }));
}

}  // namespace

void RegisterIdentityRoutes(Router& r, const ApiContext& ctx) {
  r.Add("GET", "/api/v1/whoami", Wrap([](const Request& req) -> Result<Response> {
          const auth::Principal& p = *req.principal;
          Json roles = Json::array();
          for (const auth::Binding& b : p.bindings) roles.push_back(BindingJson(b));
          return JsonResponse(200,
                              {{"kind", p.kind == auth::Principal::Kind::kUser ? "user" : "token"},
                               {"id", p.id},
                               {"name", p.name},
                               {"roles", roles}});
        }));
  r.Add("GET", "/api/v1/workspaces", Wrap([ctx](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(std::vector<store::Workspace> all, ctx.identities->ListWorkspaces());
          Json items = Json::array();
          for (const store::Workspace& w : all) {
            if (auth::WorkspaceRole(*req.principal, w.id)) items.push_back(WorkspaceJson(w));
          }
          return JsonResponse(200, {{"workspaces", items}, {"total_entries", items.size()}});
        }));
  r.Add("POST", "/api/v1/workspaces", Wrap([ctx](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(Json j, ParseObject(req.body));
          RETURN_IF_ERROR(CheckFields(j, {"name", "description"}, {"name"}));
          std::string name, description;
          RETURN_IF_ERROR(ReadString(j, "name", &name));
          RETURN_IF_ERROR(ReadString(j, "description", &description));
          ASSIGN_OR_RETURN(store::Workspace w, ctx.identities->CreateWorkspace(name, description));
          return JsonResponse(201, WorkspaceJson(w));
        }));
  r.Add("GET", "/api/v1/workspaces/{workspace}",
        Wrap([ctx](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(store::Workspace w,
                           ctx.identities->GetWorkspace(req.params.at("workspace")));
          return JsonResponse(200, WorkspaceJson(w));
        }));
  RegisterTokenRoutes(r, ctx, "/api/v1/tokens", auth::Scope::kPlatform);
  RegisterTokenRoutes(r, ctx, "/api/v1/workspaces/{workspace}/tokens", auth::Scope::kWorkspace);
  RegisterTokenRoutes(r, ctx, "/api/v1/deployments/{deployment}/tokens", auth::Scope::kDeployment);
}

}  // namespace tandem::api
