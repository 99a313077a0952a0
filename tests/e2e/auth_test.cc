// Who may do what, end to end on a real region: every route the region registers refuses a
// request without a credential and one from another deployment's token (the routes come from
// the router itself, so a new route cannot be forgotten here); API tokens on each scope, their
// roles, revocation and expiry; workspaces; and every bad credential refused with nothing
// changed.
#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "api/context.h"
#include "api/http.h"
#include "harness/region_harness.h"

namespace tandem::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;
using Headers = std::vector<std::pair<std::string, std::string>>;

Json Body(const HttpReply& r) {
  Json j = Json::parse(r.body, nullptr, false);
  return j.is_discarded() ? Json(nullptr) : j;
}

Headers As(const std::string& token) {
  return {{"Authorization", token.empty() ? "" : "Bearer " + token}};
}
const Headers kAnonymous = {{"Authorization", ""}};

class AuthTest : public SharedRegionTest {
 protected:
  static HttpReply Call(const std::string& m, const std::string& p, const Json& body = nullptr,
                        const Headers& h = {}) {
    return Http(region_->url(), m, p, body.is_null() ? "" : body.dump(), h);
  }
  // A new deployment's id.
  static std::string NewDeployment(const std::string& name, const std::string& workspace = "") {
    Json body = {{"name", name}};
    if (!workspace.empty()) body["workspace"] = workspace;
    HttpReply r = Call("POST", "/api/v1/deployments", body);
    EXPECT_EQ(r.status, 201) << r.body;
    return Body(r).value("id", "");
  }
  // A new token on `base` (…/tokens) with `role`; its secret text.
  static std::string NewToken(const std::string& base, const std::string& role,
                              const Json& extra = Json::object()) {
    Json body = {{"name", "t-" + role}, {"role", role}};
    body.update(extra);
    HttpReply r = Call("POST", base, body);
    EXPECT_EQ(r.status, 201) << r.body;
    return Body(r).value("token", "");
  }
  static std::string Root(const std::string& d) { return "/deployments/" + d + "/api/v2"; }
};

// The routes of the region's router, each with a real path for deployment `d`.
std::vector<std::tuple<std::string, std::string, auth::Need>> RegionRoutes(const std::string& d) {
  api::Router router;
  api::ApiContext ctx;  // the handlers are never called: only the routes are read
  api::RegisterAllRoutes(router, ctx);
  std::vector<std::tuple<std::string, std::string, auth::Need>> out;
  for (const api::Router::RouteInfo& r : router.Routes()) {
    std::string path = std::regex_replace(r.pattern, std::regex("\\{deployment\\}"), d);
    path = std::regex_replace(path, std::regex("\\{workspace\\}"), "default");
    path = std::regex_replace(path, std::regex("\\{[a-z_]+\\}"), "x");
    out.emplace_back(r.method, path, r.need);
  }
  return out;
}

TEST_F(AuthTest, EveryRouteRefusesAnonymousRequestsAndOtherDeploymentsTokens) {
  const std::string mine = NewDeployment("sweep-mine");
  const std::string other = NewDeployment("sweep-other");
  const std::string others_admin = NewToken("/api/v1/deployments/" + other + "/tokens", "admin");
  ASSERT_FALSE(others_admin.empty());
  Json before = Body(Call("GET", "/api/v1/deployments/" + mine));
  int swept = 0;
  for (const auto& [method, path, need] : RegionRoutes(mine)) {
    SCOPED_TRACE(std::string(method).append(" ").append(path));
    ++swept;
    HttpReply anon = Call(method, path, Json::object(), kAnonymous);
    if (need == auth::Need::kOpen) {
      EXPECT_NE(anon.status, 401) << anon.body;
      continue;
    }
    EXPECT_EQ(anon.status, 401) << anon.body;
    if (need == auth::Need::kWorker || need == auth::Need::kPair) continue;
    HttpReply foreign = Call(method, path, Json::object(), As(others_admin));
    if (need == auth::Need::kAuthenticated) {
      EXPECT_NE(foreign.status, 401) << foreign.body;
    } else {
      EXPECT_EQ(foreign.status, 403) << foreign.body;
    }
  }
  EXPECT_GT(swept, 60);
  // Nothing any refused request sent changed the deployment.
  EXPECT_EQ(Body(Call("GET", "/api/v1/deployments/" + mine)), before);
}

TEST_F(AuthTest, A401SaysHowToAuthenticate) {
  HttpReply r = Call("GET", "/api/v1/deployments", nullptr, kAnonymous);
  EXPECT_EQ(r.status, 401);
  EXPECT_NE(Body(r).value("detail", "").find("Authorization: Bearer"), std::string::npos) << r.body;
  // Open routes stay open.
  EXPECT_EQ(Call("GET", "/healthz", nullptr, kAnonymous).status, 200);
  EXPECT_EQ(Call("GET", "/readyz", nullptr, kAnonymous).status, 200);
}

TEST_F(AuthTest, BadCredentialsAreRefusedAndChangeNothing) {
  const std::string d = NewDeployment("bad-creds");
  const std::string token = NewToken("/api/v1/deployments/" + d + "/tokens", "editor");
  const std::string vars = Root(d) + "/variables";
  const Json var = {{"key", "k"}, {"value", "v"}};
  const std::string forged = token.substr(0, token.size() - 1) + (token.back() == 'a' ? "b" : "a");
  for (const Headers& h :
       std::vector<Headers>{{{"Authorization", "Basic dXNlcjpwYXNz"}},
                            {{"Authorization", "Bearer"}},
                            {{"Authorization", "Bearer " + forged}},
                            {{"Authorization", "Bearer tandem_nothing"}},
                            {{"Authorization", "Bearer " + std::string(5000, 'a')}},
                            {{"Authorization", "bearer " + token}}}) {
    HttpReply r = Call("POST", vars, var, h);
    EXPECT_EQ(r.status, 401) << h[0].second.substr(0, 40) << ": " << r.body;
    EXPECT_EQ(r.body.find(token.substr(7)), std::string::npos) << "the answer echoes the token";
  }
  EXPECT_EQ(Body(Call("GET", vars))["total_entries"], 0);
  EXPECT_EQ(Call("POST", vars, var, As(token)).status, 201);
}

TEST_F(AuthTest, DeploymentRolesReadWriteAndAdminister) {
  const std::string d = NewDeployment("roles");
  const std::string base = "/api/v1/deployments/" + d + "/tokens";
  const std::string viewer = NewToken(base, "viewer");
  const std::string editor = NewToken(base, "editor");
  const std::string vars = Root(d) + "/variables";
  EXPECT_EQ(Call("GET", vars, nullptr, As(viewer)).status, 200);
  HttpReply refused = Call("POST", vars, {{"key", "a"}, {"value", "1"}}, As(viewer));
  EXPECT_EQ(refused.status, 403) << refused.body;
  EXPECT_NE(Body(refused).value("detail", "").find("deployment editor"), std::string::npos);
  EXPECT_EQ(Call("POST", vars, {{"key", "a"}, {"value", "1"}}, As(editor)).status, 201);
  // Deleting the deployment and handing out tokens are an admin's.
  EXPECT_EQ(Call("DELETE", "/api/v1/deployments/" + d, nullptr, As(editor)).status, 403);
  EXPECT_EQ(Call("POST", base, {{"name", "more"}, {"role", "admin"}}, As(editor)).status, 403);
  // No platform rights: neither the DR API's nor other deployments'.
  EXPECT_EQ(Call("GET", "/metrics", nullptr, As(editor)).status, 403);
  Json listed = Body(Call("GET", "/api/v1/deployments", nullptr, As(editor)));
  ASSERT_EQ(listed["deployments"].size(), 1u) << listed.dump();
  EXPECT_EQ(listed["deployments"][0]["id"], d);
  EXPECT_EQ(listed["total_entries"], 1);
  Json who = Body(Call("GET", "/api/v1/whoami", nullptr, As(editor)));
  EXPECT_EQ(who["roles"][0]["scope"], "deployment");
  EXPECT_EQ(who["roles"][0]["role"], "editor");
  // A role the scope does not have.
  HttpReply wrong = Call("POST", base, {{"name", "x"}, {"role", "owner"}});
  EXPECT_EQ(wrong.status, 422) << wrong.body;
}

TEST_F(AuthTest, TokensAreShownOnceListedAndRevoked) {
  const std::string d = NewDeployment("revoke");
  const std::string base = "/api/v1/deployments/" + d + "/tokens";
  HttpReply made = Call("POST", base, {{"name", "ci"}, {"role", "editor"}});
  ASSERT_EQ(made.status, 201) << made.body;
  const std::string token = Body(made)["token"];
  const std::string id = Body(made)["id"];
  Json list = Body(Call("GET", base));
  ASSERT_EQ(list["tokens"].size(), 1u);
  EXPECT_FALSE(list["tokens"][0].contains("token"));
  EXPECT_EQ(list.dump().find(token.substr(40)), std::string::npos) << "the list shows the secret";
  EXPECT_EQ(Call("GET", Root(d) + "/variables", nullptr, As(token)).status, 200);
  HttpReply revoked = Call("DELETE", base + "/" + id);
  ASSERT_EQ(revoked.status, 200) << revoked.body;
  EXPECT_TRUE(Body(revoked)["revoked_at"].is_string());
  // Within 5 s (the region remembers a credential for 2 s).
  const auto t0 = std::chrono::steady_clock::now();
  HttpReply r;
  do {
    r = Call("GET", Root(d) + "/variables", nullptr, As(token));
    if (r.status == 401) break;
    std::this_thread::sleep_for(100ms);
  } while (std::chrono::steady_clock::now() - t0 < 5s);
  EXPECT_EQ(r.status, 401) << r.body;
  EXPECT_NE(Body(r).value("detail", "").find("revoked"), std::string::npos) << r.body;
  EXPECT_EQ(Call("DELETE", base + "/nope").status, 404);
}

TEST_F(AuthTest, TokensExpire) {
  const std::string d = NewDeployment("expiry");
  const std::string base = "/api/v1/deployments/" + d + "/tokens";
  const std::string token = NewToken(base, "viewer", {{"expires_in_seconds", 1}});
  EXPECT_EQ(Call("GET", Root(d) + "/variables", nullptr, As(token)).status, 200);
  std::this_thread::sleep_for(3500ms);  // past the expiry and the 2 s the region remembers it
  HttpReply r = Call("GET", Root(d) + "/variables", nullptr, As(token));
  EXPECT_EQ(r.status, 401) << r.body;
  EXPECT_NE(Body(r).value("detail", "").find("expired"), std::string::npos) << r.body;
  for (const Json& bad : {Json(0), Json(-5), Json("60"), Json(400LL * 24 * 3600)}) {
    EXPECT_EQ(
        Call("POST", base, {{"name", "x"}, {"role", "viewer"}, {"expires_in_seconds", bad}}).status,
        422)
        << bad;
  }
  EXPECT_EQ(Body(Call("GET", base))["tokens"].size(), 1u) << "a refused token was stored";
}

TEST_F(AuthTest, WorkspaceRolesReachTheirDeploymentsOnly) {
  HttpReply ws = Call("POST", "/api/v1/workspaces", {{"name", "data"}, {"description", "d"}});
  ASSERT_EQ(ws.status, 201) << ws.body;
  EXPECT_EQ(Call("POST", "/api/v1/workspaces", {{"name", "data"}}).status, 409);
  EXPECT_EQ(Call("POST", "/api/v1/workspaces", {{"name", "Bad Name"}}).status, 422);
  const std::string editor = NewToken("/api/v1/workspaces/data/tokens", "editor");
  // A workspace editor creates deployments in its workspace, not elsewhere.
  HttpReply in =
      Call("POST", "/api/v1/deployments", {{"name", "ws-etl"}, {"workspace", "data"}}, As(editor));
  ASSERT_EQ(in.status, 201) << in.body;
  EXPECT_EQ(Body(in)["workspace_id"], Body(ws)["id"]);
  EXPECT_EQ(Call("POST", "/api/v1/deployments", {{"name", "ws-else"}}, As(editor)).status, 403);
  EXPECT_EQ(Call("GET", "/api/v1/deployments/ws-else").status, 404) << "a refused create made it";
  const std::string elsewhere = NewDeployment("ws-default");
  EXPECT_EQ(Call("GET", "/api/v1/deployments/" + elsewhere, nullptr, As(editor)).status, 403);
  EXPECT_EQ(Call("POST", Root("ws-etl") + "/variables", {{"key", "k"}, {"value", "v"}}, As(editor))
                .status,
            201);
  Json mine = Body(Call("GET", "/api/v1/workspaces", nullptr, As(editor)));
  ASSERT_EQ(mine["workspaces"].size(), 1u) << mine.dump();
  EXPECT_EQ(mine["workspaces"][0]["name"], "data");
  // Workspaces are made by platform owners only.
  EXPECT_EQ(Call("POST", "/api/v1/workspaces", {{"name", "mine"}}, As(editor)).status, 403);
  EXPECT_EQ(Call("POST", "/api/v1/deployments", {{"name", "x"}, {"workspace", "nope"}}).status,
            404);
}

}  // namespace
}  // namespace tandem::testing
