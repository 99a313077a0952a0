// Who may do what: the roles of the three scopes, what each request needs, and the decision.
//
// Scopes nest: the platform holds workspaces, a workspace holds deployments. A principal (a
// user or an API token) holds roles bound to scopes:
//   platform   owner > operator > viewer
//   workspace  admin > editor > viewer
//   deployment admin > editor > viewer
// A role reaches down: on a deployment a principal acts with the highest of its deployment
// role, its role on the deployment's workspace, and what its platform role gives there (owner:
// admin; operator and viewer: viewer). Failover, failback and forcing need platform owner or
// operator, and nothing below the platform grants them.
//
// Every route of every server is given a Need by AccessFor(method, pattern) — one table, the
// one docs/security.md shows — and a route the table does not know is a programming error found
// when the route is registered, so a new route cannot go out unchecked. Pure: no I/O.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace tandem::auth {

enum class Scope { kPlatform, kWorkspace, kDeployment };

// Ordered within a scope: a higher role may do what a lower one may.
enum class Role { kViewer = 1, kEditor = 2, kOperator = 3, kAdmin = 4, kOwner = 5 };

std::string_view ScopeName(Scope s);  // "platform", "workspace", "deployment"
std::string_view RoleName(Role r);    // "viewer", ...
Result<Scope> ParseScope(std::string_view s);
// Only the roles that `scope` has: platform owner/operator/viewer, the others admin/editor/
// viewer. InvalidArgument naming the roles it has otherwise.
Result<Role> ParseRole(Scope scope, std::string_view s);

struct Binding {
  Scope scope = Scope::kDeployment;
  std::string scope_id;  // workspace or deployment id; empty for the platform
  Role role = Role::kViewer;
};

// Who a request is from, once authenticated.
struct Principal {
  enum class Kind { kUser, kToken };
  Kind kind = Kind::kToken;
  std::string id;    // the user's or the token's
  std::string name;  // for the audit trail and errors: "user alice", "token ci-deploy"
  std::vector<Binding> bindings;
};

// What a route needs.
enum class Need {
  kOpen,              // nothing: named in kOpenRoutes
  kAuthenticated,     // any principal (what it sees is filtered by its roles)
  kPlatformViewer,    // any platform role
  kPlatformOperator,  // fail over, fail back, force
  kPlatformOwner,     // users, workspaces, platform tokens
  kWorkspaceViewer,   // read a workspace
  kWorkspaceEditor,   // create a deployment in the workspace the body names
  kWorkspaceAdmin,    // a workspace's tokens
  kDeploymentViewer,  // read a deployment's resources
  kDeploymentEditor,  // deploy, trigger, clear, write variables/connections/pools/env
  kDeploymentAdmin,   // change or delete the deployment, its tokens and worker credentials
  kWorker,            // the Execution API: a worker credential, checked by the Execution API
  kPair,              // the pair's internal calls: the pair credential, checked by their server
};
std::string_view NeedName(Need n);

struct RouteAccess {
  Need need = Need::kAuthenticated;
};

// The routes that need no credential: health, readiness and logging in.
inline constexpr const char* kOpenRoutes[] = {
    "GET /healthz",
    "GET /readyz",
    "POST /auth/token",
    "POST /deployments/{deployment}/auth/token",
};

// The Need of a route, by its method and pattern ("/api/v1/deployments/{deployment}/env"). A
// pattern the table does not cover is an error (Internal) naming it.
Result<RouteAccess> AccessFor(std::string_view method, std::string_view pattern);

// Where a request acts: the deployment and its workspace, or the workspace alone.
struct Target {
  std::string workspace_id;
  std::string deployment_id;
};

// The highest role `p` holds on `t`'s deployment, through any scope; nullopt: none.
std::optional<Role> DeploymentRole(const Principal& p, const Target& t);
// The highest role `p` holds on workspace `workspace_id` (platform owner: admin).
std::optional<Role> WorkspaceRole(const Principal& p, const std::string& workspace_id);
std::optional<Role> PlatformRole(const Principal& p);

// Whether `p` may do what `need` names on `t`. kOpen: always; kWorker and kPair: never here
// (their servers check their own credentials).
bool Allows(const Principal& p, Need need, const Target& t);

}  // namespace tandem::auth
