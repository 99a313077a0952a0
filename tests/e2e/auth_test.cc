// Who may do what, end to end on a real region: every route the region registers refuses a
// request without a credential and one from another deployment's token (the routes come from
// the router itself, so a new route cannot be forgotten here); API tokens on each scope, their
// roles, revocation and expiry; workspaces; and every bad credential refused with nothing
// changed.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "api/context.h"
#include "api/http.h"
#include "base/fs.h"
#include "crypto/secret_box.h"
#include "crypto/token.h"
#include "harness/region_harness.h"
#include "pg/conn.h"

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
                            {{"Authorization", "bearer " + token}},
                            {{"Authorization", "Basic " + Base64Encode("ci:" + forged)}},
                            {{"Authorization", "Basic " + Base64Encode(token)}},
                            {{"Authorization", "Basic " + Base64Encode("ci:")}},
                            {{"Authorization", "Basic !" + token}}}) {
    HttpReply r = Call("POST", vars, var, h);
    EXPECT_EQ(r.status, 401) << h[0].second.substr(0, 40) << ": " << r.body;
    EXPECT_EQ(r.body.find(token.substr(7)), std::string::npos) << "the answer echoes the token";
  }
  EXPECT_EQ(Body(Call("GET", vars))["total_entries"], 0);
  EXPECT_EQ(Call("POST", vars, var, As(token)).status, 201);
  // The token as the password of Basic, as `docker login` and `curl -u` send it: any name.
  const Json other = {{"key", "k2"}, {"value", "v"}};
  HttpReply basic =
      Call("POST", vars, other, {{"Authorization", "Basic " + Base64Encode("ci:" + token)}});
  EXPECT_EQ(basic.status, 201) << basic.body;
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

// Airflow 3's way in: POST /auth/token with a user's name and password gives a JWT that works as
// a bearer, on the deployment's path and its host name alike.
TEST_F(AuthTest, UsersLogInForASessionTokenWithTheirRoles) {
  const std::string d = NewDeployment("login");
  HttpReply made =
      Call("POST", "/api/v1/users", {{"name", "alice"}, {"password", "correct horse 1"}});
  ASSERT_EQ(made.status, 201) << made.body;
  EXPECT_EQ(made.body.find("argon2"), std::string::npos) << "the answer holds the hash";
  EXPECT_EQ(made.body.find("correct horse"), std::string::npos);
  HttpReply granted = Call("POST", "/api/v1/users/alice/roles",
                           {{"scope", "deployment"}, {"target", "login"}, {"role", "editor"}});
  ASSERT_EQ(granted.status, 200) << granted.body;
  EXPECT_EQ(Body(granted)["roles"][0]["role"], "editor");

  HttpReply login = Call("POST", "/auth/token",
                         {{"username", "alice"}, {"password", "correct horse 1"}}, kAnonymous);
  ASSERT_EQ(login.status, 201) << login.body;
  const std::string jwt = Body(login)["access_token"];
  ASSERT_EQ(std::count(jwt.begin(), jwt.end(), '.'), 2) << jwt;
  EXPECT_EQ(Call("POST", Root(d) + "/variables", {{"key", "k"}, {"value", "v"}}, As(jwt)).status,
            201);
  EXPECT_EQ(Call("DELETE", "/api/v1/deployments/" + d, nullptr, As(jwt)).status, 403);
  Json who = Body(Call("GET", "/api/v1/whoami", nullptr, As(jwt)));
  EXPECT_EQ(who["kind"], "user");
  EXPECT_EQ(who["name"], "user alice");
  // The deployment's own path serves the same login.
  EXPECT_EQ(Call("POST", "/deployments/" + d + "/auth/token",
                 {{"username", "alice"}, {"password", "correct horse 1"}}, kAnonymous)
                .status,
            201);
  // A password change ends every session (within the 2 s a credential is remembered).
  ASSERT_EQ(Call("PATCH", "/api/v1/users/alice", {{"password", "correct horse 2"}}).status, 200);
  std::this_thread::sleep_for(2100ms);
  HttpReply old = Call("GET", Root(d) + "/variables", nullptr, As(jwt));
  EXPECT_EQ(old.status, 401) << old.body;
  // Disabled: no login, and no session.
  HttpReply again = Call("POST", "/auth/token",
                         {{"username", "alice"}, {"password", "correct horse 2"}}, kAnonymous);
  ASSERT_EQ(again.status, 201) << again.body;
  const std::string jwt2 = Body(again)["access_token"];
  ASSERT_EQ(Call("PATCH", "/api/v1/users/alice", {{"disabled", true}}).status, 200);
  std::this_thread::sleep_for(2100ms);
  EXPECT_EQ(Call("GET", Root(d) + "/variables", nullptr, As(jwt2)).status, 401);
  EXPECT_EQ(Call("POST", "/auth/token", {{"username", "alice"}, {"password", "correct horse 2"}},
                 kAnonymous)
                .status,
            401);
}

TEST_F(AuthTest, ForgedSessionTokensAreRefused) {
  const std::string d = NewDeployment("forged");
  ASSERT_EQ(
      Call("POST", "/api/v1/users", {{"name", "mallory"}, {"password", "mallory password"}}).status,
      201);
  HttpReply login = Call("POST", "/auth/token",
                         {{"username", "mallory"}, {"password", "mallory password"}}, kAnonymous);
  ASSERT_EQ(login.status, 201) << login.body;
  const std::string jwt = Body(login)["access_token"];
  const size_t a = jwt.find('.'), b = jwt.rfind('.');
  auto b64 = [](const std::string& s) {
    std::string out = Base64Encode(s);
    while (!out.empty() && out.back() == '=') out.pop_back();
    for (char& c : out) c = c == '+' ? '-' : c == '/' ? '_' : c;
    return out;
  };
  // A year more under the old signature, the same claims with "alg": "none", and the same
  // token signed with another key.
  Json claims = Json::parse(*Base64Decode([&] {
    std::string p = jwt.substr(a + 1, b - a - 1);
    for (char& c : p) c = c == '-' ? '+' : c == '_' ? '/' : c;
    while (p.size() % 4) p += '=';
    return p;
  }()));
  claims["exp"] = claims["exp"].get<int64_t>() + int64_t{86400} * 365;
  const std::string changed = jwt.substr(0, a) + "." + b64(claims.dump()) + jwt.substr(b);
  const std::string none = b64(R"({"alg":"none","typ":"JWT"})") + "." + b64(claims.dump()) + ".";
  const std::string rekeyed =
      jwt.substr(0, b) + "." + b64(HmacSha256(std::string(32, 'x'), jwt.substr(0, b)));
  ASSERT_EQ(Call("POST", "/api/v1/users/mallory/roles",
                 {{"scope", "deployment"}, {"target", "forged"}, {"role", "viewer"}})
                .status,
            200);
  EXPECT_EQ(Call("GET", Root(d) + "/variables", nullptr, As(jwt)).status, 200);
  for (const std::string& bad : {changed, none, rekeyed}) {
    HttpReply r = Call("GET", Root(d) + "/variables", nullptr, As(bad));
    EXPECT_EQ(r.status, 401) << bad << ": " << r.body;
  }
}

// Guessing is slowed: five failures a minute for one user name, whatever the passwords.
TEST_F(AuthTest, PasswordGuessesAreRateLimited) {
  ASSERT_EQ(Call("POST", "/api/v1/users", {{"name", "bob"}, {"password", "bob's password"}}).status,
            201);
  for (int i = 0; i < 5; ++i) {
    HttpReply r =
        Call("POST", "/auth/token",
             {{"username", "bob"}, {"password", "guess " + std::to_string(i)}}, kAnonymous);
    EXPECT_EQ(r.status, 401) << r.body;
    EXPECT_EQ(Body(r)["detail"], "invalid username or password");
  }
  // Even the right password waits now; the answer says how long.
  HttpReply limited = Call("POST", "/auth/token",
                           {{"username", "bob"}, {"password", "bob's password"}}, kAnonymous);
  EXPECT_EQ(limited.status, 429) << limited.body;
  EXPECT_NE(Body(limited).value("detail", "").find("try again in"), std::string::npos);
  // An unknown user is answered as a wrong password is.
  HttpReply unknown = Call("POST", "/auth/token",
                           {{"username", "nobody"}, {"password", "whatever it is"}}, kAnonymous);
  EXPECT_EQ(unknown.status, 401);
  EXPECT_EQ(Body(unknown)["detail"], "invalid username or password");
}

TEST_F(AuthTest, BadUserInputIsRefusedAndChangesNothing) {
  EXPECT_EQ(Call("POST", "/api/v1/users", {{"name", "carol"}, {"password", "short"}}).status, 422);
  EXPECT_EQ(
      Call("POST", "/api/v1/users", {{"name", "Carol!"}, {"password", "long enough pw"}}).status,
      422);
  EXPECT_EQ(Call("GET", "/api/v1/users/carol").status, 404);
  ASSERT_EQ(
      Call("POST", "/api/v1/users", {{"name", "carol"}, {"password", "long enough pw"}}).status,
      201);
  EXPECT_EQ(
      Call("POST", "/api/v1/users", {{"name", "carol"}, {"password", "long enough pw"}}).status,
      409);
  EXPECT_EQ(
      Call("POST", "/api/v1/users/carol/roles", {{"scope", "platform"}, {"role", "editor"}}).status,
      422);
  EXPECT_EQ(Call("POST", "/api/v1/users/carol/roles", {{"scope", "deployment"}, {"role", "viewer"}})
                .status,
            422);
  EXPECT_EQ(Call("POST", "/api/v1/users/carol/roles",
                 {{"scope", "workspace"}, {"target", "nope"}, {"role", "viewer"}})
                .status,
            404);
  EXPECT_TRUE(Body(Call("GET", "/api/v1/users/carol"))["roles"].empty());
  EXPECT_EQ(Call("POST", "/auth/token", {{"username", "carol"}}, kAnonymous).status, 422);
  EXPECT_EQ(
      Call("POST", "/auth/token", {{"username", "carol"}, {"password", 5}}, kAnonymous).status,
      422);
}

// The keyring is the platform owners' alone: an operator may fail over but not rotate keys, and
// a refused or malformed rotation changes nothing.
TEST_F(AuthTest, OnlyPlatformOwnersSeeOrRotateTheKeyring) {
  const std::string d = NewDeployment("keyring");
  const std::string operator_token = NewToken("/api/v1/tokens", "operator");
  const std::string admin = NewToken("/api/v1/deployments/" + d + "/tokens", "admin");
  const Json before = Body(Call("GET", "/api/v1/keys"));
  ASSERT_TRUE(before["keys"].is_array()) << before.dump();
  for (const std::string& t : {operator_token, admin}) {
    EXPECT_EQ(Call("GET", "/api/v1/keys", nullptr, As(t)).status, 403);
    HttpReply refused = Call("POST", "/api/v1/keys/rotate", Json::object(), As(t));
    EXPECT_EQ(refused.status, 403) << refused.body;
    EXPECT_NE(Body(refused).value("detail", "").find("platform owner"), std::string::npos)
        << refused.body;
  }
  EXPECT_EQ(Call("POST", "/api/v1/keys/rotate", nullptr, kAnonymous).status, 401);
  HttpReply bad = Call("POST", "/api/v1/keys/rotate", {{"purpose", "everything"}});
  EXPECT_EQ(bad.status, 422) << bad.body;
  EXPECT_EQ(Body(Call("GET", "/api/v1/keys")), before);
  HttpReply ok = Call("POST", "/api/v1/keys/rotate", Json::object());
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(Body(ok)["key"]["state"], "active");
  const Json after = Body(Call("GET", "/api/v1/keys"));
  EXPECT_EQ(after["keys"].size(), before["keys"].size() + 1);
  EXPECT_EQ(after["keys"][0]["id"], Body(ok)["key"]["id"]);
  EXPECT_EQ(after.dump().find("wrapped"), std::string::npos);
}

// The CLI's way: a platform owner makes a user and grants a role; the user logs in with the
// password on stdin, and the session kept in the state directory is what later commands send.
TEST_F(AuthTest, TheCliLogsInAsAUser) {
  const std::string d = NewDeployment("cli-login");
  auto tandem = [&](std::vector<std::string> args, const std::string& in = "") {
    args.insert(args.begin(), {"--url", region_->url()});
    return RunCli(args, 60, in);
  };
  CliRun made = tandem({"user", "create", "dave"}, "dave's password\n");
  ASSERT_EQ(made.exit_code, 0) << made.output;
  CliRun granted = tandem({"role", "grant", "dave", "editor", "--deployment", "cli-login"});
  ASSERT_EQ(granted.exit_code, 0) << granted.output;
  EXPECT_NE(granted.output.find("editor on deployment"), std::string::npos) << granted.output;

  auto dir = TempDir::Create("tandem-cli-login");
  ASSERT_TRUE(dir.ok());
  const std::string state = dir->path();
  CliSendsOwnerToken(false);  // from here, what the CLI sends is what login kept
  auto as_dave = [&](std::vector<std::string> args, const std::string& in = "") {
    args.insert(args.begin(), {"--state-dir", state});
    return tandem(args, in);
  };
  CliRun wrong = as_dave({"login", "dave"}, "not the password\n");
  EXPECT_EQ(wrong.exit_code, 1) << wrong.output;
  EXPECT_NE(wrong.output.find("invalid username or password"), std::string::npos);
  CliRun in = as_dave({"login", "dave"}, "dave's password\n");
  ASSERT_EQ(in.exit_code, 0) << in.output;
  struct stat st {};
  ASSERT_EQ(stat((state + "/session").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  CliRun who = as_dave({"whoami"});
  EXPECT_EQ(who.exit_code, 0) << who.output;
  EXPECT_NE(who.output.find("user dave"), std::string::npos) << who.output;
  EXPECT_EQ(as_dave({"var", "set", "cli-login", "k", "v"}).exit_code, 0);
  CliRun refused = as_dave({"deployment", "delete", "cli-login"});
  EXPECT_EQ(refused.exit_code, 1) << refused.output;
  EXPECT_NE(refused.output.find("deployment admin"), std::string::npos) << refused.output;
  EXPECT_EQ(as_dave({"logout"}).exit_code, 0);
  CliRun gone = as_dave({"whoami"});
  EXPECT_EQ(gone.exit_code, 1) << gone.output;
  EXPECT_NE(gone.output.find("needs a credential"), std::string::npos) << gone.output;
  CliSendsOwnerToken(true);
  EXPECT_EQ(Call("GET", "/api/v1/deployments/cli-login").status, 200) << "a refusal changed it";
}

// The audit trail: every write and every refusal, by whom and from where, secrets masked; each
// deployment's part served as Airflow's event logs; and nothing can change it afterwards.
TEST_F(AuthTest, WritesAndRefusalsGoToAnAppendOnlyAuditTrail) {
  const std::string d = NewDeployment("audited");
  const std::string other = NewDeployment("audited-other");
  const std::string viewer = NewToken("/api/v1/deployments/" + d + "/tokens", "viewer");
  ASSERT_EQ(
      Call("POST", Root(d) + "/variables", {{"key", "db_password"}, {"value", "hunter2-audit"}})
          .status,
      201);
  ASSERT_EQ(Call("POST", Root(d) + "/connections",
                 {{"connection_id", "wh"}, {"conn_type", "postgres"}, {"password", "pw-audit-1"}})
                .status,
            201);
  ASSERT_EQ(Call("POST", Root(other) + "/variables", {{"key", "plain"}, {"value", "x"}}).status,
            201);
  EXPECT_EQ(Call("POST", Root(d) + "/variables", {{"key", "k"}, {"value", "v"}}, As(viewer)).status,
            403);
  EXPECT_EQ(Call("DELETE", "/api/v1/deployments/" + d, nullptr, kAnonymous).status, 401);

  HttpReply all = Call("GET", "/api/v1/audit?deployment=audited&limit=100");
  ASSERT_EQ(all.status, 200) << all.body;
  EXPECT_EQ(all.body.find("hunter2-audit"), std::string::npos) << "a secret reached the trail";
  EXPECT_EQ(all.body.find("pw-audit-1"), std::string::npos) << "a password reached the trail";
  std::map<std::string, Json> by_outcome;
  const Json trail = Body(all);  // kept: a range-for over a temporary's member would dangle
  for (const Json& e : trail["events"]) {
    EXPECT_EQ(e["deployment_id"], d) << e.dump();
    EXPECT_EQ(e["source"], "127.0.0.1") << e.dump();
    by_outcome[e["principal"].get<std::string>() + " " + e["event"].get<std::string>() + " " +
               e["outcome"].get<std::string>()] = e;
  }
  ASSERT_TRUE(by_outcome.count("token bootstrap post_variables ok")) << all.body;
  EXPECT_EQ(by_outcome["token bootstrap post_variables ok"]["detail"]["body"]["value"], "***");
  EXPECT_EQ(by_outcome["token bootstrap post_connections ok"]["detail"]["body"]["password"], "***");
  ASSERT_TRUE(by_outcome.count("token t-viewer post_variables refused")) << all.body;
  EXPECT_EQ(by_outcome["token t-viewer post_variables refused"]["status"], 403);
  ASSERT_TRUE(by_outcome.count("anonymous delete_deployments refused")) << all.body;

  // The deployment's own part, as Airflow's event logs, filtered as asked.
  Json logs = Body(Call("GET", Root(d) + "/eventLogs?event=post_variables"));
  ASSERT_GE(logs["total_entries"].get<int>(), 2) << logs.dump();
  for (const Json& e : logs["event_logs"]) {
    EXPECT_EQ(e["event"], "post_variables");
    for (const char* k : {"event_log_id", "when", "dag_id", "task_id", "run_id", "map_index",
                          "try_number", "logical_date", "owner", "extra"}) {
      EXPECT_TRUE(e.contains(k)) << k;
    }
  }
  Json others = Body(Call("GET", Root(other) + "/eventLogs"));
  for (const Json& e : others["event_logs"]) EXPECT_NE(e["owner"], "token t-viewer");
  const int64_t id = logs["event_logs"][0]["event_log_id"];
  EXPECT_EQ(Call("GET", Root(d) + "/eventLogs/" + std::to_string(id)).status, 200);
  EXPECT_EQ(Call("GET", Root(other) + "/eventLogs/" + std::to_string(id)).status, 404);
  EXPECT_EQ(Call("GET", Root(d) + "/eventLogs?colour=blue").status, 422);
  EXPECT_EQ(Call("GET", Root(d) + "/eventLogs?after=yesterday").status, 422);
  EXPECT_EQ(
      Body(Call(
          "GET",
          Root(d) + "/eventLogs?excluded_events=post_variables,post_connections"))["event_logs"]
          .size(),
      Body(Call("GET", Root(d) + "/eventLogs?limit=1000"))["total_entries"].get<size_t>() -
          Body(Call("GET", Root(d) + "/eventLogs?included_events=post_variables,"
                                     "post_connections"))["total_entries"]
              .get<size_t>());
  // Reading the trail needs a platform role.
  EXPECT_EQ(Call("GET", "/api/v1/audit", nullptr, As(viewer)).status, 403);

  // Append-only, even for the database's owner.
  auto db = pg::Conn::Connect(region_->Dsn());
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  EXPECT_FALSE((*db)->Exec("UPDATE audit_events SET principal = 'nobody'").ok());
  EXPECT_FALSE((*db)->Exec("DELETE FROM audit_events").ok());
  EXPECT_FALSE((*db)->Exec("TRUNCATE audit_events").ok());
}

}  // namespace
}  // namespace tandem::testing
