#include "auth/policy.h"

#include <algorithm>
#include <array>

namespace tandem::auth {
namespace {

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

bool IsRead(std::string_view method) { return method == "GET"; }

// A rule: routes whose pattern starts with `prefix` (and, with `exact`, equals it) need
// `read` for GET and `write` for anything else. The first rule that matches decides.
struct Rule {
  std::string_view prefix;
  bool exact;
  Need read;
  Need write;
};

// The table docs/security.md shows ("Who may do what"). Order matters: specific before general.
constexpr std::array kRules = {
    // The platform.
    Rule{"/metrics", true, Need::kPlatformViewer, Need::kPlatformViewer},
    Rule{"/api/v1/whoami", true, Need::kAuthenticated, Need::kAuthenticated},
    Rule{"/api/v1/dr/", false, Need::kPlatformViewer, Need::kPlatformOperator},
    Rule{"/api/v1/tokens", false, Need::kPlatformOwner, Need::kPlatformOwner},
    Rule{"/api/v1/worker-credentials", false, Need::kPlatformOwner, Need::kPlatformOwner},
    Rule{"/api/v1/users", false, Need::kPlatformOwner, Need::kPlatformOwner},
    Rule{"/api/v1/keys", false, Need::kPlatformOwner, Need::kPlatformOwner},
    Rule{"/api/v1/registry", true, Need::kAuthenticated, Need::kAuthenticated},
    Rule{"/api/v1/registry/token", true, Need::kAuthenticated, Need::kAuthenticated},
    Rule{"/api/v1/audit", true, Need::kPlatformViewer, Need::kPlatformOwner},
    // Workspaces: everyone lists those they can see; creating one is the platform's.
    Rule{"/api/v1/workspaces", true, Need::kAuthenticated, Need::kPlatformOwner},
    Rule{"/api/v1/workspaces/{workspace}/tokens", false, Need::kWorkspaceAdmin,
         Need::kWorkspaceAdmin},
    Rule{"/api/v1/workspaces/{workspace}", false, Need::kWorkspaceViewer, Need::kPlatformOwner},
    // Deployments: listing is filtered by role; creating needs the workspace.
    Rule{"/api/v1/deployments", true, Need::kAuthenticated, Need::kWorkspaceEditor},
    Rule{"/api/v1/deployments/{deployment}", true, Need::kDeploymentViewer, Need::kDeploymentAdmin},
    Rule{"/api/v1/deployments/{deployment}/tokens", false, Need::kDeploymentAdmin,
         Need::kDeploymentAdmin},
    Rule{"/api/v1/deployments/{deployment}/worker-credentials", false, Need::kDeploymentAdmin,
         Need::kDeploymentAdmin},
    Rule{"/api/v1/deployments/{deployment}/", false, Need::kDeploymentViewer,
         Need::kDeploymentEditor},
    // The Airflow API of each deployment, by path (and by host name, which the server turns
    // into the path before routing).
    Rule{"/deployments/{deployment}/api/v2/", false, Need::kDeploymentViewer,
         Need::kDeploymentEditor},
    // Workers and the pair: credentials of their own.
    Rule{"/execution/v1/", false, Need::kWorker, Need::kWorker},
    Rule{"/deployments/{deployment}/execution/v1/", false, Need::kWorker, Need::kWorker},
    Rule{"/internal/v1/", false, Need::kPair, Need::kPair},
};

constexpr Role Max(Role a, Role b) { return static_cast<int>(a) >= static_cast<int>(b) ? a : b; }

void Raise(std::optional<Role>& have, Role r) { have = have ? Max(*have, r) : r; }

bool AtLeast(const std::optional<Role>& have, Role want) {
  return have && static_cast<int>(*have) >= static_cast<int>(want);
}

}  // namespace

std::string_view ScopeName(Scope s) {
  switch (s) {
    case Scope::kPlatform:
      return "platform";
    case Scope::kWorkspace:
      return "workspace";
    case Scope::kDeployment:
      return "deployment";
  }
  return "?";
}

std::string_view RoleName(Role r) {
  switch (r) {
    case Role::kViewer:
      return "viewer";
    case Role::kEditor:
      return "editor";
    case Role::kOperator:
      return "operator";
    case Role::kAdmin:
      return "admin";
    case Role::kOwner:
      return "owner";
  }
  return "?";
}

Result<Scope> ParseScope(std::string_view s) {
  for (Scope x : {Scope::kPlatform, Scope::kWorkspace, Scope::kDeployment}) {
    if (ScopeName(x) == s) return x;
  }
  return InvalidArgument("unknown scope '" + std::string(s) +
                         "': one of platform, workspace, deployment");
}

Result<Role> ParseRole(Scope scope, std::string_view s) {
  const std::vector<Role> roles = scope == Scope::kPlatform
                                      ? std::vector{Role::kOwner, Role::kOperator, Role::kViewer}
                                      : std::vector{Role::kAdmin, Role::kEditor, Role::kViewer};
  std::string names;
  for (Role r : roles) {
    if (RoleName(r) == s) return r;
    names += (names.empty() ? "" : ", ") + std::string(RoleName(r));
  }
  return InvalidArgument("a " + std::string(ScopeName(scope)) + " role is one of " + names +
                         ", not '" + std::string(s) + "'");
}

std::string_view NeedName(Need n) {
  switch (n) {
    case Need::kOpen:
      return "none";
    case Need::kAuthenticated:
      return "any principal";
    case Need::kPlatformViewer:
      return "platform viewer";
    case Need::kPlatformOperator:
      return "platform operator";
    case Need::kPlatformOwner:
      return "platform owner";
    case Need::kWorkspaceViewer:
      return "workspace viewer";
    case Need::kWorkspaceEditor:
      return "workspace editor";
    case Need::kWorkspaceAdmin:
      return "workspace admin";
    case Need::kDeploymentViewer:
      return "deployment viewer";
    case Need::kDeploymentEditor:
      return "deployment editor";
    case Need::kDeploymentAdmin:
      return "deployment admin";
    case Need::kWorker:
      return "a worker credential";
    case Need::kPair:
      return "the pair credential";
  }
  return "?";
}

Result<RouteAccess> AccessFor(std::string_view method, std::string_view pattern) {
  const std::string route = std::string(method) + " " + std::string(pattern);
  for (const char* open : kOpenRoutes) {
    if (route == open) return RouteAccess{Need::kOpen};
  }
  for (const Rule& r : kRules) {
    if (r.exact ? pattern == r.prefix : StartsWith(pattern, r.prefix)) {
      return RouteAccess{IsRead(method) ? r.read : r.write};
    }
  }
  return Internal("the route " + route +
                  " has no entry in the access table (auth/policy.cc): every route needs one");
}

std::optional<Role> PlatformRole(const Principal& p) {
  std::optional<Role> have;
  for (const Binding& b : p.bindings) {
    if (b.scope == Scope::kPlatform) Raise(have, b.role);
  }
  return have;
}

std::optional<Role> WorkspaceRole(const Principal& p, const std::string& workspace_id) {
  std::optional<Role> have;
  for (const Binding& b : p.bindings) {
    if (b.scope == Scope::kPlatform) {
      Raise(have, b.role == Role::kOwner ? Role::kAdmin : Role::kViewer);
    } else if (b.scope == Scope::kWorkspace && !workspace_id.empty() &&
               b.scope_id == workspace_id) {
      Raise(have, b.role);
    }
  }
  return have;
}

std::optional<Role> DeploymentRole(const Principal& p, const Target& t) {
  std::optional<Role> have = WorkspaceRole(p, t.workspace_id);
  for (const Binding& b : p.bindings) {
    if (b.scope == Scope::kDeployment && !t.deployment_id.empty() &&
        b.scope_id == t.deployment_id) {
      Raise(have, b.role);
    }
  }
  return have;
}

bool Allows(const Principal& p, Need need, const Target& t) {
  switch (need) {
    case Need::kOpen:
    case Need::kAuthenticated:
      return true;
    case Need::kPlatformViewer:
      return PlatformRole(p).has_value();
    case Need::kPlatformOperator:
      return AtLeast(PlatformRole(p), Role::kOperator);
    case Need::kPlatformOwner:
      return AtLeast(PlatformRole(p), Role::kOwner);
    case Need::kWorkspaceViewer:
      return AtLeast(WorkspaceRole(p, t.workspace_id), Role::kViewer);
    case Need::kWorkspaceEditor:
      return AtLeast(WorkspaceRole(p, t.workspace_id), Role::kEditor);
    case Need::kWorkspaceAdmin:
      return AtLeast(WorkspaceRole(p, t.workspace_id), Role::kAdmin);
    case Need::kDeploymentViewer:
      return AtLeast(DeploymentRole(p, t), Role::kViewer);
    case Need::kDeploymentEditor:
      return AtLeast(DeploymentRole(p, t), Role::kEditor);
    case Need::kDeploymentAdmin:
      return AtLeast(DeploymentRole(p, t), Role::kAdmin);
    case Need::kWorker:
    case Need::kPair:
      return false;
  }
  return false;
}

}  // namespace tandem::auth
