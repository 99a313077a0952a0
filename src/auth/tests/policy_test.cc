#include "auth/policy.h"

#include <gtest/gtest.h>

namespace tandem::auth {
namespace {

Principal With(std::vector<Binding> b) {
  Principal p;
  p.id = "p";
  p.name = "token test";
  p.bindings = std::move(b);
  return p;
}

const Target kProd{"ws-data", "dep-prod"};
const Target kOther{"ws-web", "dep-web"};

TEST(PolicyTest, ADeploymentRoleReachesItsDeploymentOnly) {
  Principal editor = With({{Scope::kDeployment, "dep-prod", Role::kEditor}});
  EXPECT_TRUE(Allows(editor, Need::kDeploymentViewer, kProd));
  EXPECT_TRUE(Allows(editor, Need::kDeploymentEditor, kProd));
  EXPECT_FALSE(Allows(editor, Need::kDeploymentAdmin, kProd));
  EXPECT_FALSE(Allows(editor, Need::kDeploymentViewer, kOther));
  EXPECT_FALSE(Allows(editor, Need::kWorkspaceViewer, kProd));
  EXPECT_FALSE(Allows(editor, Need::kPlatformViewer, kProd));
  EXPECT_FALSE(Allows(editor, Need::kPlatformOperator, kProd));
}

TEST(PolicyTest, AWorkspaceRoleReachesEveryDeploymentOfItsWorkspace) {
  Principal admin = With({{Scope::kWorkspace, "ws-data", Role::kAdmin}});
  EXPECT_TRUE(Allows(admin, Need::kDeploymentAdmin, kProd));
  EXPECT_TRUE(Allows(admin, Need::kWorkspaceAdmin, kProd));
  EXPECT_TRUE(Allows(admin, Need::kWorkspaceEditor, kProd));
  EXPECT_FALSE(Allows(admin, Need::kDeploymentViewer, kOther));
  Principal viewer = With({{Scope::kWorkspace, "ws-data", Role::kViewer}});
  EXPECT_TRUE(Allows(viewer, Need::kDeploymentViewer, kProd));
  EXPECT_FALSE(Allows(viewer, Need::kDeploymentEditor, kProd));
  EXPECT_FALSE(Allows(viewer, Need::kWorkspaceEditor, kProd));
}

TEST(PolicyTest, TheHighestRoleWins) {
  Principal p = With({{Scope::kWorkspace, "ws-data", Role::kViewer},
                      {Scope::kDeployment, "dep-prod", Role::kAdmin}});
  EXPECT_TRUE(Allows(p, Need::kDeploymentAdmin, kProd));
  EXPECT_EQ(DeploymentRole(p, kProd), Role::kAdmin);
  EXPECT_EQ(DeploymentRole(p, {"ws-data", "dep-dev"}), Role::kViewer);
}

// Only platform owners and operators fail over; nothing below the platform grants it.
TEST(PolicyTest, FailoverNeedsAPlatformOwnerOrOperator) {
  EXPECT_TRUE(Allows(With({{Scope::kPlatform, "", Role::kOwner}}), Need::kPlatformOperator, {}));
  EXPECT_TRUE(Allows(With({{Scope::kPlatform, "", Role::kOperator}}), Need::kPlatformOperator, {}));
  EXPECT_FALSE(Allows(With({{Scope::kPlatform, "", Role::kViewer}}), Need::kPlatformOperator, {}));
  EXPECT_FALSE(
      Allows(With({{Scope::kWorkspace, "ws-data", Role::kAdmin}}), Need::kPlatformOperator, {}));
  EXPECT_FALSE(Allows(With({{Scope::kDeployment, "dep-prod", Role::kAdmin}}),
                      Need::kPlatformOperator, kProd));
}

TEST(PolicyTest, PlatformRolesReachDown) {
  Principal owner = With({{Scope::kPlatform, "", Role::kOwner}});
  EXPECT_TRUE(Allows(owner, Need::kDeploymentAdmin, kOther));
  EXPECT_TRUE(Allows(owner, Need::kWorkspaceAdmin, kOther));
  EXPECT_TRUE(Allows(owner, Need::kPlatformOwner, {}));
  // An operator fails over and reads, but does not change deployments.
  Principal op = With({{Scope::kPlatform, "", Role::kOperator}});
  EXPECT_TRUE(Allows(op, Need::kDeploymentViewer, kOther));
  EXPECT_FALSE(Allows(op, Need::kDeploymentEditor, kOther));
  EXPECT_FALSE(Allows(op, Need::kPlatformOwner, {}));
}

TEST(PolicyTest, NoRoleAllowsWorkerOrPairRoutes) {
  Principal owner = With({{Scope::kPlatform, "", Role::kOwner}});
  EXPECT_FALSE(Allows(owner, Need::kWorker, kProd));
  EXPECT_FALSE(Allows(owner, Need::kPair, {}));
  EXPECT_TRUE(Allows(With({}), Need::kAuthenticated, {}));
}

TEST(PolicyTest, RolesParsePerScope) {
  EXPECT_EQ(*ParseRole(Scope::kPlatform, "operator"), Role::kOperator);
  EXPECT_EQ(*ParseRole(Scope::kDeployment, "editor"), Role::kEditor);
  Result<Role> wrong = ParseRole(Scope::kPlatform, "editor");
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().message(),
            "a platform role is one of owner, operator, viewer, not 'editor'");
  EXPECT_FALSE(ParseRole(Scope::kWorkspace, "owner").ok());
  EXPECT_FALSE(ParseScope("org").ok());
}

TEST(AccessForTest, TheTableCoversRoutesByMethod) {
  auto need = [](const char* m, const char* p) { return AccessFor(m, p)->need; };
  EXPECT_EQ(need("GET", "/healthz"), Need::kOpen);
  EXPECT_EQ(need("POST", "/auth/token"), Need::kOpen);
  EXPECT_EQ(need("GET", "/metrics"), Need::kPlatformViewer);
  EXPECT_EQ(need("POST", "/api/v1/dr/failover"), Need::kPlatformOperator);
  EXPECT_EQ(need("GET", "/api/v1/dr/status"), Need::kPlatformViewer);
  EXPECT_EQ(need("POST", "/api/v1/deployments"), Need::kWorkspaceEditor);
  EXPECT_EQ(need("GET", "/api/v1/deployments"), Need::kAuthenticated);
  EXPECT_EQ(need("DELETE", "/api/v1/deployments/{deployment}"), Need::kDeploymentAdmin);
  EXPECT_EQ(need("POST", "/api/v1/deployments/{deployment}/bundle"), Need::kDeploymentEditor);
  EXPECT_EQ(need("GET", "/api/v1/deployments/{deployment}/tokens"), Need::kDeploymentAdmin);
  EXPECT_EQ(need("GET", "/deployments/{deployment}/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}"),
            Need::kDeploymentViewer);
  EXPECT_EQ(need("POST", "/deployments/{deployment}/api/v2/dags/{dag_id}/dagRuns"),
            Need::kDeploymentEditor);
  EXPECT_EQ(need("POST", "/execution/v1/claim"), Need::kWorker);
  EXPECT_EQ(need("POST", "/internal/v1/dr/promote"), Need::kPair);
}

// A route nobody gave a Need is refused at registration, not served open.
TEST(AccessForTest, AnUnknownRouteIsAnError) {
  Result<RouteAccess> a = AccessFor("GET", "/debug/pprof");
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find("GET /debug/pprof"), std::string::npos);
  // "/healthz" is open for GET only.
  EXPECT_FALSE(AccessFor("POST", "/healthz").ok());
}

}  // namespace
}  // namespace tandem::auth
