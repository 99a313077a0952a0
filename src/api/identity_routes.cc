// Who is asking and what they may hand out: logging in (POST /auth/token, as Airflow 3 does),
// /api/v1/whoami, users and their roles, workspaces, and API tokens on each scope —
// /api/v1/tokens (the platform's, for its owners), /api/v1/workspaces/{workspace}/tokens (for
// the workspace's admins), /api/v1/deployments/{deployment}/tokens (the deployment's admins) —
// and worker credentials: /api/v1/deployments/{deployment}/worker-credentials (a deployment's
// workers, for its admins) and /api/v1/worker-credentials (a pool serving every deployment, for
// the platform's owners). A token or credential is shown once, in the answer that made it; lists
// show what it is, never it. No answer holds a password or its hash.
#include "api/auth.h"
#include "api/context.h"
#include "api/errors.h"
#include "api/json_util.h"
#include "api/worker_auth.h"
#include "auth/api_token.h"
#include "auth/password.h"
#include "auth/session.h"
#include "base/clock.h"
#include "store/identities.h"
#include "store/store.h"

namespace tandem::api {
namespace {

// How long a session token lasts: Airflow's default ([api_auth] jwt_expiration_time).
constexpr int64_t kSessionSeconds = int64_t{24} * 3600;

// A year: a token for longer is a token nobody remembers to rotate.
constexpr int64_t kMaxTokenSeconds = 366LL * 24 * 3600;

Json BindingJson(const auth::Binding& b) {
  return {{"scope", auth::ScopeName(b.scope)},
          {"scope_id", b.scope_id.empty() ? Json(nullptr) : Json(b.scope_id)},
          {"role", auth::RoleName(b.role)}};
}

Json TokenJson(const store::ApiToken& t) {
  return {{"id", t.id},
          {"name", t.name},
          {"description", t.description},
          {"scope", auth::ScopeName(t.binding.scope)},
          {"scope_id", t.binding.scope_id.empty() ? Json(nullptr) : Json(t.binding.scope_id)},
          {"role", auth::RoleName(t.binding.role)},
          {"created_by", t.created_by},
          {"created_at", t.created_at},
          {"expires_at", OptJson(t.expires_at)},
          {"revoked_at", OptJson(t.revoked_at)}};
}

Json UserJson(const store::User& u) {
  Json roles = Json::array();
  for (const auth::Binding& b : u.roles) roles.push_back(BindingJson(b));
  return {{"id", u.id},
          {"name", u.name},
          {"created_at", u.created_at},
          {"disabled_at", u.disabled_at ? Json(*u.disabled_at) : Json(nullptr)},
          {"roles", roles}};
}

// The binding a role grant names: {"scope", "target"?, "role"?}, `target` a workspace's or a
// deployment's name or id (none for the platform).
Result<auth::Binding> ReadBinding(const ApiContext& ctx, const Json& j, bool with_role) {
  auth::Binding b;
  std::string scope, target, role;
  RETURN_IF_ERROR(ReadString(j, "scope", &scope));
  RETURN_IF_ERROR(ReadString(j, "target", &target));
  ASSIGN_OR_RETURN(b.scope, auth::ParseScope(scope));
  if (b.scope == auth::Scope::kPlatform) {
    if (!target.empty()) return InvalidArgument("a platform role takes no `target`");
  } else if (target.empty()) {
    return InvalidArgument("a " + scope + " role needs `target`: the " + scope + "'s name or id");
  } else if (b.scope == auth::Scope::kWorkspace) {
    ASSIGN_OR_RETURN(store::Workspace w, ctx.identities->GetWorkspace(target));
    b.scope_id = w.id;
  } else {
    ASSIGN_OR_RETURN(auth::Target t, ctx.identities->TargetOf(target));
    b.scope_id = t.deployment_id;
  }
  if (with_role) {
    RETURN_IF_ERROR(ReadString(j, "role", &role));
    ASSIGN_OR_RETURN(b.role, auth::ParseRole(b.scope, role));
  }
  return b;
}

// POST /auth/token: {"username", "password"} -> 201 {"access_token"}, Airflow 3's shape. A
// wrong password and an unknown user get the same answer after the same work.
Result<Response> Login(const ApiContext& ctx, const Request& req) {
  ASSIGN_OR_RETURN(Json j, ParseObject(req.body));
  RETURN_IF_ERROR(CheckFields(j, {"username", "password"}, {"username", "password"}));
  std::string name, password;
  RETURN_IF_ERROR(ReadString(j, "username", &name));
  RETURN_IF_ERROR(ReadString(j, "password", &password));
  // No user has a longer name or password: refused before anything is counted or hashed.
  if (name.size() > 64 || password.size() > 1024) {
    return Unauthenticated("invalid username or password");
  }
  if (int64_t wait = ctx.logins->RetryAfter(name, req.remote_address); wait > 0) {
    Response r = JsonResponse(429, {{"detail",
                                     "too many failed logins for this user or from "
                                     "this address: try again in " +
                                         std::to_string(wait) + " s"}});
    r.headers.emplace_back("Retry-After", std::to_string(wait));
    return r;
  }
  Result<store::Credentials> c = ctx.identities->CredentialsOf(name);
  if (!c.ok() && c.status().code() != Code::kNotFound) return c.status();
  const bool ok = c.ok() ? !c->disabled && auth::VerifyPassword(c->password_hash, password)
                         : (auth::VerifyPassword(auth::DecoyHash(), password), false);
  if (!ok) {
    ctx.logins->Failed(name, req.remote_address);
    return Unauthenticated("invalid username or password");
  }
  const int64_t now =
      std::chrono::duration_cast<std::chrono::seconds>(RealClock().Wall().time_since_epoch())
          .count();
  const std::string jwt = auth::SignSession(
      ctx.session_key, {c->user_id, name, now, now + kSessionSeconds, c->session_generation});
  return JsonResponse(201, {{"access_token", jwt}});
}

void RegisterUserRoutes(Router& r, const ApiContext& ctx) {
  r.Add("GET", "/api/v1/users", Wrap([ctx](const Request&) -> Result<Response> {
          ASSIGN_OR_RETURN(std::vector<store::User> all, ctx.identities->ListUsers());
          Json items = Json::array();
          for (const store::User& u : all) items.push_back(UserJson(u));
          return JsonResponse(200, {{"users", items}, {"total_entries", items.size()}});
        }));
  r.Add("POST", "/api/v1/users", Wrap([ctx](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(Json j, ParseObject(req.body));
          RETURN_IF_ERROR(CheckFields(j, {"name", "password"}, {"name", "password"}));
          std::string name, password;
          RETURN_IF_ERROR(ReadString(j, "name", &name));
          RETURN_IF_ERROR(ReadString(j, "password", &password));
          ASSIGN_OR_RETURN(std::string hash, auth::HashPassword(password));
          ASSIGN_OR_RETURN(store::User u, ctx.identities->CreateUser(name, hash));
          return JsonResponse(201, UserJson(u));
        }));
  r.Add("GET", "/api/v1/users/{user}", Wrap([ctx](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(store::User u, ctx.identities->GetUser(req.params.at("user")));
          return JsonResponse(200, UserJson(u));
        }));
  // {"password"?, "disabled"?}: either ends the user's sessions.
  r.Add("PATCH", "/api/v1/users/{user}", Wrap([ctx](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(Json j, ParseObject(req.body));
          RETURN_IF_ERROR(CheckFields(j, {"password", "disabled"}));
          const std::string& ref = req.params.at("user");
          std::optional<std::string> hash;
          if (j.contains("password")) {
            std::string password;
            RETURN_IF_ERROR(ReadString(j, "password", &password));
            ASSIGN_OR_RETURN(hash, auth::HashPassword(password));
          }
          std::optional<bool> disabled;
          if (j.contains("disabled")) {
            bool d = false;
            RETURN_IF_ERROR(ReadBool(j, "disabled", &d));
            disabled = d;
          }
          ASSIGN_OR_RETURN(store::User u, ctx.identities->GetUser(ref));
          if (hash) {
            ASSIGN_OR_RETURN(u, ctx.identities->SetPassword(u.id, *hash));
          }
          if (disabled) {
            ASSIGN_OR_RETURN(u, ctx.identities->SetDisabled(u.id, *disabled));
          }
          return JsonResponse(200, UserJson(u));
        }));
  r.Add("POST", "/api/v1/users/{user}/roles", Wrap([ctx](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(Json j, ParseObject(req.body));
          RETURN_IF_ERROR(CheckFields(j, {"scope", "target", "role"}, {"scope", "role"}));
          ASSIGN_OR_RETURN(auth::Binding b, ReadBinding(ctx, j, true));
          ASSIGN_OR_RETURN(store::User u, ctx.identities->Grant(req.params.at("user"), b));
          return JsonResponse(200, UserJson(u));
        }));
  // ?scope=...&target=...: takes the user's role on that scope away.
  r.Add("DELETE", "/api/v1/users/{user}/roles", Wrap([ctx](const Request& req) -> Result<Response> {
          Json j = Json::object();
          for (const char* k : {"scope", "target"}) {
            if (const std::string* v = req.Query(k)) j[k] = *v;
          }
          if (!j.contains("scope")) return InvalidArgument("query parameter `scope` is required");
          ASSIGN_OR_RETURN(auth::Binding b, ReadBinding(ctx, j, false));
          ASSIGN_OR_RETURN(store::User u,
                           ctx.identities->Ungrant(req.params.at("user"), b.scope, b.scope_id));
          return JsonResponse(200, UserJson(u));
        }));
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

// What a token and a worker credential are made with besides their scope.
struct Naming {
  std::string name;
  std::string description;
  std::optional<int64_t> expires_in_seconds;
};
Result<Naming> ReadNaming(const Json& j) {
  Naming n;
  RETURN_IF_ERROR(ReadString(j, "name", &n.name));
  if (n.name.empty() || n.name.size() > 100) {
    return InvalidArgument("field `name` must be 1 to 100 characters");
  }
  RETURN_IF_ERROR(ReadString(j, "description", &n.description));
  if (j.contains("expires_in_seconds") && !j["expires_in_seconds"].is_null()) {
    if (!j["expires_in_seconds"].is_number_integer() ||
        j["expires_in_seconds"].get<int64_t>() < 1 ||
        j["expires_in_seconds"].get<int64_t>() > kMaxTokenSeconds) {
      return InvalidArgument("field `expires_in_seconds` must be an integer from 1 to " +
                             std::to_string(kMaxTokenSeconds) + " (a year)");
    }
    n.expires_in_seconds = j["expires_in_seconds"].get<int64_t>();
  }
  return n;
}

Json WorkerCredentialJson(const store::WorkerCredential& w) {
  return {{"id", w.id},
          {"name", w.name},
          {"description", w.description},
          {"deployment_id", OptJson(w.deployment_id)},
          {"created_by", w.created_by},
          {"created_at", w.created_at},
          {"expires_at", OptJson(w.expires_at)},
          {"revoked_at", OptJson(w.revoked_at)}};
}

// Worker credentials of one deployment (`per_deployment`) or the platform's pool.
void RegisterWorkerCredentialRoutes(Router& r, const ApiContext& ctx, const std::string& base,
                                    bool per_deployment) {
  auto deployment = [ctx, per_deployment](const Request& req) -> Result<std::optional<std::string>> {
    if (!per_deployment) return std::optional<std::string>();
    ASSIGN_OR_RETURN(auth::Target t, ctx.identities->TargetOf(req.params.at("deployment")));
    return std::optional<std::string>(t.deployment_id);
  };
  r.Add("GET", base, Wrap([ctx, deployment](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(std::optional<std::string> d, deployment(req));
          ASSIGN_OR_RETURN(std::vector<store::WorkerCredential> ws,
                           ctx.identities->ListWorkerCredentials(d));
          Json items = Json::array();
          for (const store::WorkerCredential& w : ws) items.push_back(WorkerCredentialJson(w));
          return JsonResponse(200, {{"worker_credentials", items},
                                    {"total_entries", items.size()}});
        }));
  r.Add("POST", base, Wrap([ctx, deployment](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(Json j, ParseObject(req.body));
          RETURN_IF_ERROR(
              CheckFields(j, {"name", "description", "expires_in_seconds"}, {"name"}));
          ASSIGN_OR_RETURN(Naming n, ReadNaming(j));
          store::WorkerCredential w;
          ASSIGN_OR_RETURN(w.deployment_id, deployment(req));
          w.name = n.name;
          w.description = n.description;
          w.created_by = req.principal ? req.principal->name : "";
          const auth::TokenParts parts = auth::NewToken();
          w.id = parts.id;
          ASSIGN_OR_RETURN(store::WorkerCredential made,
                           ctx.identities->CreateWorkerCredential(
                               w, auth::SecretHash(parts.secret), n.expires_in_seconds));
          Json out = WorkerCredentialJson(made);
          out["credential"] = auth::FormatToken(parts);  // the only time it is shown
          return JsonResponse(201, out);
        }));
  r.Add("DELETE", base + "/{credential_id}",
        Wrap([ctx, deployment](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(std::optional<std::string> d, deployment(req));
          const std::string& id = req.params.at("credential_id");
          ASSIGN_OR_RETURN(store::WorkerCredential w,
                           ctx.identities->RevokeWorkerCredential(d, id));
          if (ctx.workers != nullptr) ctx.workers->Forget(id);  // refused from the next request
          return JsonResponse(200, WorkerCredentialJson(w));
        }));
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
          ASSIGN_OR_RETURN(Naming n, ReadNaming(j));
          t.name = n.name;
          t.description = n.description;
          const std::optional<int64_t> expires = n.expires_in_seconds;
          std::string role;
          RETURN_IF_ERROR(ReadString(j, "role", &role));
          ASSIGN_OR_RETURN(t.binding.role, auth::ParseRole(scope, role));
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
  for (const char* path : {"/auth/token", "/deployments/{deployment}/auth/token"}) {
    r.Add("POST", path, Wrap([ctx](const Request& req) { return Login(ctx, req); }));
  }
  RegisterUserRoutes(r, ctx);
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
  RegisterWorkerCredentialRoutes(r, ctx, "/api/v1/worker-credentials", false);
  RegisterWorkerCredentialRoutes(r, ctx, "/api/v1/deployments/{deployment}/worker-credentials",
                                 true);
}

}  // namespace tandem::api
