// The region's REST API over real HTTP: tandem's /api/v1/deployments and the Airflow v2 shapes
// for variables, connections and pools, with every bad input the API must refuse unchanged.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "crypto/keyring.h"
#include "crypto/secret_box.h"
#include "harness/region_harness.h"
#include "pg/conn.h"

namespace tandem::testing {
namespace {

using Json = nlohmann::json;

class ApiTest : public SharedRegionTest {
 protected:

  static HttpReply Call(const std::string& m, const std::string& p, const Json& body = nullptr) {
    return region_->Call(m, p, body.is_null() ? "" : body.dump());
  }
  static Json Body(const HttpReply& r) { return Json::parse(r.body, nullptr, false); }
  // Asserts an error answer: the status and {"detail": "..."} containing `words`.
  static void ExpectError(const HttpReply& r, int status, const std::string& words) {
    EXPECT_EQ(r.status, status) << r.body;
    Json j = Body(r);
    ASSERT_TRUE(j.is_object() && j.contains("detail")) << r.body;
    EXPECT_NE(j["detail"].get<std::string>().find(words), std::string::npos) << r.body;
  }
  static std::string NewDeployment(const std::string& name) {
    auto r = Call("POST", "/api/v1/deployments", {{"name", name}});
    EXPECT_EQ(r.status, 201) << r.body;
    return name;
  }
  static std::string Root(const std::string& d) { return "/deployments/" + d + "/api/v2"; }

};

TEST_F(ApiTest, HealthReadinessAndMetrics) {
  EXPECT_EQ(Call("GET", "/healthz").status, 200);
  auto ready = Call("GET", "/readyz");
  EXPECT_EQ(ready.status, 200);
  EXPECT_NE(ready.body.find("schema at version"), std::string::npos);
  auto m = Call("GET", "/metrics");
  EXPECT_EQ(m.status, 200);
  EXPECT_NE(m.body.find("tandem_up{region=\"test-region\"} 1"), std::string::npos) << m.body;
  EXPECT_NE(m.body.find("tandem_postgres_up{region=\"test-region\"} 1"), std::string::npos);
  EXPECT_NE(m.body.find("tandem_http_requests_total{region=\"test-region\""), std::string::npos);
}

TEST_F(ApiTest, DeploymentCrud) {
  auto created = Call("POST", "/api/v1/deployments",
                      {{"name", "crud"},
                       {"description", "d"},
                       {"config", {{"worker_slots", 4}, {"schedule", {{"catchup", true}}}}},
                       {"metrics_export",
                        {{"enabled", true}, {"endpoint", "http://127.0.0.1:9/metrics"}}}});
  ASSERT_EQ(created.status, 201) << created.body;
  Json d = Body(created);
  std::string id = d["id"];
  EXPECT_EQ(d["namespace"], "crud-" + id.substr(0, 6));
  EXPECT_EQ(d["config"]["worker_slots"], 4);
  EXPECT_EQ(d["config"]["schedule"]["catchup"], true);
  EXPECT_EQ(d["config"]["schedule"]["max_active_runs"], 16);  // default kept
  EXPECT_EQ(d["metrics_export"]["format"], "prometheus");

  EXPECT_EQ(Body(Call("GET", "/api/v1/deployments/" + id))["name"], "crud");
  auto patched = Call("PATCH", "/api/v1/deployments/crud",
                      {{"name", "crud2"}, {"config", {{"default_pool_slots", 3}}}});
  ASSERT_EQ(patched.status, 200) << patched.body;
  EXPECT_EQ(Body(patched)["id"], id);
  EXPECT_EQ(Body(patched)["namespace"], d["namespace"]);
  EXPECT_EQ(Body(patched)["config"]["worker_slots"], 4);
  auto pool = Call("GET", Root("crud2") + "/pools/default_pool");
  EXPECT_EQ(Body(pool)["slots"], 3);

  auto list = Body(Call("GET", "/api/v1/deployments?name_pattern=crud"));
  EXPECT_EQ(list["total_entries"], 1);
  EXPECT_EQ(Call("DELETE", "/api/v1/deployments/crud2").status, 204);
  ExpectError(Call("GET", "/api/v1/deployments/" + id), 404, "no deployment");
  ExpectError(Call("GET", Root(id) + "/variables"), 404, "no deployment");
}

TEST_F(ApiTest, DeploymentBadInputChangesNothing) {
  NewDeployment("bad-input");
  ExpectError(Call("POST", "/api/v1/deployments", {{"name", "bad-input"}}), 409,
              "already exists");
  ExpectError(Call("POST", "/api/v1/deployments", {{"name", "Has_Caps"}}), 422,
              "deployment name");
  ExpectError(Call("POST", "/api/v1/deployments", {{"name", std::string(41, 'a')}}), 422,
              "1 to 40 characters");
  ExpectError(Call("POST", "/api/v1/deployments", {{"name", "x"}, {"colour", "red"}}), 422,
              "unknown field `colour`");
  ExpectError(Call("POST", "/api/v1/deployments",
                   {{"name", "x"}, {"config", {{"workers", 3}}}}),
              422, "unknown field `config.workers`");
  ExpectError(Call("POST", "/api/v1/deployments", {{"name", "x"}, {"config", {{"worker_slots",
                                                                              "many"}}}}),
              422, "config.worker_slots` must be an integer");
  ExpectError(Call("POST", "/api/v1/deployments", {{"description", "no name"}}), 422,
              "`name` is required");
  ExpectError(region_->Call("POST", "/api/v1/deployments", "{\"name\": "), 422,
              "not valid JSON");
  ExpectError(region_->Call("POST", "/api/v1/deployments", "[1]"), 422, "JSON object");
  ExpectError(Call("POST", "/api/v1/deployments",
                   {{"name", "big"}, {"description", std::string((1 << 20) + 1, 'x')}}),
              413, "more than the limit");
  ExpectError(Call("PATCH", "/api/v1/deployments/bad-input", {{"name", "Nope!"}}), 422,
              "deployment name");
  ExpectError(Call("PATCH", "/api/v1/deployments/missing", {{"description", "x"}}), 404,
              "no deployment");
  ExpectError(Call("GET", "/api/v1/deployments?limit=abc"), 422, "`limit` must be an integer");
  ExpectError(Call("GET", "/api/v1/deployments?order_by=colour"), 422, "Ordering with");
  // A body beyond the HTTP limit is refused before it is read.
  ExpectError(region_->Call("POST", "/api/v1/deployments", std::string(5 << 20, ' ')), 413,
              "larger than");

  // Nothing was created or changed by the refused requests.
  for (const char* name : {"x", "big", "Has_Caps", "Nope!"}) {
    EXPECT_EQ(Call("GET", std::string("/api/v1/deployments/") + name).status, 404) << name;
  }
  EXPECT_EQ(Body(Call("GET", "/api/v1/deployments/bad-input"))["description"], "");
}

TEST_F(ApiTest, EnvVarsMaskSecrets) {
  std::string base = "/api/v1/deployments/" + NewDeployment("envs") + "/env";
  EXPECT_EQ(Call("PUT", base + "/PLAIN", {{"value", "1"}}).status, 200);
  auto secret = Call("PUT", base + "/TOKEN", {{"value", "s3cret"}, {"is_secret", true}});
  EXPECT_EQ(Body(secret)["value"], "***");
  auto list = Call("GET", base);
  EXPECT_EQ(list.body.find("s3cret"), std::string::npos);
  EXPECT_EQ(Body(list)["total_entries"], 2);
  EXPECT_EQ(Body(Call("PUT", base + "/TOKEN", {{"value", "***"}}))["is_secret"], true);
  ExpectError(Call("PUT", base + "/1BAD", {{"value", "x"}}), 422, "env var name");
  ExpectError(Call("PUT", base + "/AIRFLOW_CONN_X", {{"value", "x"}}), 422, "reserved");
  ExpectError(Call("PUT", base + "/BIG", {{"value", std::string((1 << 20) + 1, 'x')}}), 413,
              "limit");
  ExpectError(Call("PUT", base + "/X", {{"value", "x"}, {"secret", true}}), 422, "unknown field");
  ExpectError(Call("DELETE", base + "/NOPE"), 404, "NOPE");
  EXPECT_EQ(Call("DELETE", base + "/PLAIN").status, 204);
  EXPECT_EQ(Body(Call("GET", base))["total_entries"], 1);
}

TEST_F(ApiTest, VariablesFollowAirflowShapes) {
  std::string root = Root(NewDeployment("vars"));
  auto c = Call("POST", root + "/variables", {{"key", "k1"}, {"value", "v1"},
                                              {"description", "first"}});
  ASSERT_EQ(c.status, 201) << c.body;
  EXPECT_EQ(Body(c), Json({{"key", "k1"}, {"value", "v1"}, {"description", "first"},
                           {"is_encrypted", false}}));
  // Non-string JSON values are kept as their JSON text, as Airflow does.
  auto j = Call("POST", root + "/variables", {{"key", "cfg"}, {"value", {{"a", 1}}}});
  EXPECT_EQ(Body(j)["value"], "{\"a\":1}");
  auto s = Call("POST", root + "/variables", {{"key", "db_password"}, {"value", "pw"}});
  EXPECT_EQ(Body(s)["value"], "***");
  EXPECT_EQ(Body(s)["is_encrypted"], true);
  ExpectError(Call("POST", root + "/variables", {{"key", "k1"}, {"value", "x"}}), 409,
              "already exists");

  auto page = Body(Call("GET", root + "/variables?limit=1&offset=1&order_by=key"));
  EXPECT_EQ(page["total_entries"], 3);
  ASSERT_EQ(page["variables"].size(), 1u);
  EXPECT_EQ(page["variables"][0]["key"], "db_password");
  EXPECT_EQ(Body(Call("GET", root + "/variables?variable_key_pattern=k"))["total_entries"], 1);

  auto p = Call("PATCH", root + "/variables/k1?update_mask=value",
                {{"key", "k1"}, {"value", "v2"}, {"description", "ignored"}});
  ASSERT_EQ(p.status, 200) << p.body;
  EXPECT_EQ(Body(p)["value"], "v2");
  EXPECT_EQ(Body(p)["description"], "first");
  ExpectError(Call("PATCH", root + "/variables/k1", {{"key", "other"}, {"value", "v"}}), 400,
              "doesn't match");
  ExpectError(Call("PATCH", root + "/variables/k1?update_mask=key", {{"key", "k1"}, {"value", 1}}),
              422, "update_mask names a field that cannot be updated: `key`");
  ExpectError(Call("GET", root + "/variables/nope"), 404, "The Variable with key: `nope`");
  ExpectError(Call("POST", root + "/variables", {{"key", "x"}}), 422, "`value` is required");
  ExpectError(Call("POST", root + "/variables", {{"key", std::string(251, 'k')}, {"value", 1}}),
              422, "1 to 250");
  EXPECT_EQ(Call("DELETE", root + "/variables/k1").status, 204);
  ExpectError(Call("DELETE", root + "/variables/k1"), 404, "not found");
}

TEST_F(ApiTest, ConnectionsRedactSecrets) {
  std::string root = Root(NewDeployment("conns"));
  Json body = {{"connection_id", "warehouse"}, {"conn_type", "postgres"}, {"host", "db"},
               {"port", 5432}, {"login", "etl"}, {"password", "hunter2"},
               {"extra", "{\"sslmode\": \"require\", \"api_key\": \"abc\"}"}};
  auto c = Call("POST", root + "/connections", body);
  ASSERT_EQ(c.status, 201) << c.body;
  Json r = Body(c);
  EXPECT_EQ(r["password"], "***");
  Json extra = Json::parse(r["extra"].get<std::string>());
  EXPECT_EQ(extra["sslmode"], "require");
  EXPECT_EQ(extra["api_key"], "***");
  for (const char* field : {"description", "schema"}) EXPECT_TRUE(r[field].is_null()) << field;
  auto list = Call("GET", root + "/connections");
  EXPECT_EQ(list.body.find("hunter2"), std::string::npos);
  EXPECT_EQ(list.body.find("abc"), std::string::npos);
  EXPECT_EQ(Body(list)["total_entries"], 1);

  auto p = Call("PATCH", root + "/connections/warehouse?update_mask=host",
                {{"connection_id", "warehouse"}, {"conn_type", "postgres"}, {"host", "db2"}});
  ASSERT_EQ(p.status, 200) << p.body;
  EXPECT_EQ(Body(p)["host"], "db2");
  EXPECT_EQ(Body(p)["password"], "***");  // untouched by the masked update

  ExpectError(Call("POST", root + "/connections", body), 409, "already exists");
  ExpectError(Call("POST", root + "/connections", {{"connection_id", "bad id"},
                                                   {"conn_type", "http"}}),
              422, "connection_id");
  ExpectError(Call("POST", root + "/connections", {{"connection_id", "x"}, {"conn_type", "http"},
                                                   {"extra", "not json"}}),
              422, "valid JSON object");
  ExpectError(Call("POST", root + "/connections", {{"connection_id", "x"}}), 422,
              "`conn_type` is required");
  ExpectError(Call("GET", root + "/connections/none"), 404,
              "The Connection with connection_id: `none`");
  EXPECT_EQ(Call("DELETE", root + "/connections/warehouse").status, 204);
}

TEST_F(ApiTest, PoolsKeepTheDefaultPool) {
  std::string root = Root(NewDeployment("pools"));
  auto list = Body(Call("GET", root + "/pools"));
  ASSERT_EQ(list["total_entries"], 1);
  EXPECT_EQ(list["pools"][0]["name"], "default_pool");
  EXPECT_EQ(list["pools"][0]["open_slots"], 128);
  auto c = Call("POST", root + "/pools", {{"name", "gpu"}, {"slots", 2}});
  ASSERT_EQ(c.status, 201) << c.body;
  for (const char* field : {"occupied_slots", "running_slots", "queued_slots", "scheduled_slots",
                            "deferred_slots", "open_slots", "include_deferred"}) {
    EXPECT_TRUE(Body(c).contains(field)) << field;
  }
  auto p = Call("PATCH", root + "/pools/gpu", {{"slots", 5}});
  EXPECT_EQ(Body(p)["slots"], 5);
  ExpectError(Call("DELETE", root + "/pools/default_pool"), 400, "can't be deleted");
  ExpectError(Call("PATCH", root + "/pools/default_pool", {{"pool", "renamed"}}), 400,
              "Default Pool");
  ExpectError(Call("POST", root + "/pools", {{"name", "gpu"}, {"slots", 1}}), 409, "exists");
  ExpectError(Call("POST", root + "/pools", {{"name", "neg"}, {"slots", -5}}), 422, "slots");
  ExpectError(Call("POST", root + "/pools", {{"name", "t"}, {"slots", "two"}}), 422,
              "must be an integer");
  EXPECT_EQ(Call("DELETE", root + "/pools/gpu").status, 204);
  ExpectError(Call("GET", root + "/pools/gpu"), 404, "The Pool with name: `gpu`");
}

TEST_F(ApiTest, BulkActionsFollowAirflowSemantics) {
  std::string root = Root(NewDeployment("bulk"));
  auto Bulk = [&](const std::string& what, const Json& actions) {
    auto r = Call("PATCH", root + "/" + what, {{"actions", actions}});
    EXPECT_EQ(r.status, 200) << r.body;
    return Body(r);
  };
  Json created = Bulk("variables", {{{"action", "create"},
                                     {"entities", {{{"key", "a"}, {"value", "1"}},
                                                   {{"key", "b"}, {"value", "2"}}}}}});
  EXPECT_EQ(created["create"]["success"], Json({"a", "b"}));
  EXPECT_TRUE(created["update"].is_null());
  EXPECT_TRUE(created["delete"].is_null());

  // "fail" on an existing key does nothing for that action and says which keys.
  Json failed = Bulk("variables", {{{"action", "create"},
                                    {"entities", {{{"key", "a"}, {"value", "x"}},
                                                  {{"key", "c"}, {"value", "3"}}}}}});
  EXPECT_EQ(failed["create"]["success"], Json::array());
  ASSERT_EQ(failed["create"]["errors"].size(), 1u);
  EXPECT_EQ(failed["create"]["errors"][0]["status_code"], 409);
  EXPECT_EQ(failed["create"]["errors"][0]["error"],
            "The variables with these keys: {'a'} already exist.");
  ExpectError(Call("GET", root + "/variables/c"), 404, "not found");

  Json mixed = Bulk(
      "variables",
      {{{"action", "create"},
        {"action_on_existence", "skip"},
        {"entities", {{{"key", "a"}, {"value", "skipped"}}, {{"key", "c"}, {"value", "3"}}}}},
       {{"action", "create"},
        {"action_on_existence", "overwrite"},
        {"entities", {{{"key", "b"}, {"value", "22"}}}}},
       {{"action", "update"},
        {"action_on_non_existence", "skip"},
        {"entities", {{{"key", "c"}, {"value", "33"}}, {{"key", "zz"}, {"value", "0"}}}}},
       {{"action", "delete"}, {"entities", {"a", "nope"}}}});
  EXPECT_EQ(mixed["create"]["success"], Json({"c", "b"}));
  EXPECT_EQ(mixed["update"]["success"], Json({"c"}));
  EXPECT_EQ(mixed["delete"]["success"], Json::array());  // "nope" is missing: fail
  EXPECT_EQ(mixed["delete"]["errors"][0]["status_code"], 404);
  EXPECT_EQ(Body(Call("GET", root + "/variables/a"))["value"], "1");
  EXPECT_EQ(Body(Call("GET", root + "/variables/b"))["value"], "22");
  EXPECT_EQ(Body(Call("GET", root + "/variables/c"))["value"], "33");

  Json pools = Bulk("pools", {{{"action", "create"},
                               {"entities", {{{"name", "p1"}, {"slots", 2}}}}},
                              {{"action", "update"},
                               {"entities", {{{"name", "default_pool"}, {"slots", 9}}}}}});
  EXPECT_EQ(pools["create"]["success"], Json({"p1"}));
  EXPECT_EQ(pools["update"]["success"], Json({"default_pool"}));
  EXPECT_EQ(Body(Call("GET", root + "/pools/default_pool"))["slots"], 9);
  Json nodefault = Bulk("pools", {{{"action", "delete"}, {"entities", {"default_pool", "p1"}}}});
  EXPECT_EQ(nodefault["delete"]["success"], Json({"p1"}));
  EXPECT_EQ(nodefault["delete"]["errors"][0]["status_code"], 400);

  Json conns = Bulk("connections",
                    {{{"action", "create"},
                      {"entities", {{{"connection_id", "c1"}, {"conn_type", "http"},
                                     {"password", "pw"}}}}},
                     {{"action", "update"},
                      {"entities", {{{"connection_id", "c1"}, {"conn_type", "http"},
                                     {"host", "h"}, {"password", "***"}}}}}});
  EXPECT_EQ(conns["create"]["success"], Json({"c1"}));
  EXPECT_EQ(conns["update"]["success"], Json({"c1"}));
  EXPECT_EQ(Body(Call("GET", root + "/connections/c1"))["host"], "h");
  EXPECT_EQ(Body(Call("GET", root + "/connections/c1"))["password"], "***");
}

TEST_F(ApiTest, MalformedBulkRequestsChangeNothing) {
  std::string root = Root(NewDeployment("bulk-bad"));
  auto Bulk = [&](const Json& body) { return Call("PATCH", root + "/variables", body); };
  // The second entity is invalid: the first must not be created either.
  ExpectError(Bulk({{"actions", {{{"action", "create"},
                                  {"entities", {{{"key", "ok"}, {"value", "1"}},
                                                {{"key", std::string(251, 'k')}, {"value", 1}}}}}}}}),
              422, "actions[0].entities[1]: variable key");
  ExpectError(Bulk({{"actions", {{{"action", "upsert"}, {"entities", Json::array()}}}}}), 422,
              "must be create, update or delete");
  ExpectError(Bulk({{"actions", {{{"action", "update"}, {"entities", Json::array()},
                                  {"action_on_non_existence", "overwrite"}}}}}),
              422, "must be fail or skip");
  ExpectError(Bulk({{"actions", {{{"action", "delete"}, {"entities", {1}}}}}}), 422,
              "must be a string key");
  ExpectError(Bulk({{"actions", {{{"action", "create"},
                                  {"entities", {{{"key", "d"}, {"value", 1}},
                                                {{"key", "d"}, {"value", 2}}}}}}}}),
              422, "same key twice");
  ExpectError(Bulk({{"actons", Json::array()}}), 422, "unknown field `actons`");
  EXPECT_EQ(Body(Call("GET", root + "/variables"))["total_entries"], 0);
}

TEST_F(ApiTest, KeysWithSlashesAndPercentsAreAddressable) {
  std::string root = Root(NewDeployment("odd-keys"));
  ASSERT_EQ(Call("POST", root + "/variables", {{"key", "a/b%41 c"}, {"value", "v"}}).status, 201);
  auto got = Call("GET", root + "/variables/a%2Fb%2541%20c");
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(Body(got)["key"], "a/b%41 c");
  EXPECT_EQ(Call("DELETE", root + "/variables/a%2Fb%2541%20c").status, 204);
}

TEST_F(ApiTest, SecretsCannotBeRevealedOrOverwrittenWithTheMask) {
  std::string dep = NewDeployment("masks");
  std::string root = Root(dep);
  ASSERT_EQ(Call("POST", root + "/variables",
                 {{"key", "token_x"}, {"value", "real"}, {"is_secret", true}})
                .status,
            201);
  // Secret by request (its key is not a sensitive word): still cannot be made plain.
  ASSERT_EQ(Call("POST", root + "/variables",
                 {{"key", "opaque"}, {"value", "hidden"}, {"is_secret", true}})
                .status,
            201);
  ExpectError(Call("PATCH", root + "/variables/opaque?update_mask=is_secret",
                   {{"key", "opaque"}, {"value", "***"}, {"is_secret", false}}),
              400, "stays secret");
  EXPECT_EQ(Body(Call("GET", root + "/variables/opaque"))["value"], "***");
  // Writing back what was read ("***") keeps the stored secrets.
  EXPECT_EQ(Call("PATCH", root + "/variables/token_x", {{"key", "token_x"}, {"value", "***"}})
                .status,
            200);
  std::string env = "/api/v1/deployments/" + dep + "/env/SECRET_ENV";
  ASSERT_EQ(Call("PUT", env, {{"value", "e-1"}, {"is_secret", true}}).status, 200);
  ASSERT_EQ(Call("PUT", env, {{"value", "***"}}).status, 200);
  Json conn = {{"connection_id", "c"}, {"conn_type", "http"}, {"password", "pw-1"},
               {"extra", R"({"auth": {"token": "tk-1"}, "keys": [{"api_key": "k-1"}],
                             "region": "eu"})"}};
  ASSERT_EQ(Call("POST", root + "/connections", conn).status, 201);
  Json read = Body(Call("GET", root + "/connections/c"));
  EXPECT_EQ(Json::parse(read["extra"].get<std::string>())["auth"]["token"], "***");  // nested
  read["host"] = "new-host";
  auto p = Call("PATCH", root + "/connections/c", read);
  ASSERT_EQ(p.status, 200) << p.body;

  // Look at what is stored, as an operator with the key could.
  auto key = SecretBox::FromBase64(region_->SecretKey());
  ASSERT_TRUE(key.ok());
  auto db = pg::Conn::Connect(region_->Dsn());
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  std::string id = Body(Call("GET", "/api/v1/deployments/" + dep))["id"];
  auto rows = (*db)->Exec("SELECT password_enc, extra_enc, host FROM connections c JOIN "
                          "deployments d ON d.id = c.deployment_id WHERE d.name = $1",
                          {dep});
  ASSERT_TRUE(rows.ok() && rows->size() == 1);
  EXPECT_EQ(rows->Text(0, 2), "new-host");
  // The keyring's data keys, unwrapped as the store does (docs/security.md, "Keys").
  Keyring ring(*key);
  auto wrap = SecretBox::Create(key->DeriveKey("tandem keyring wrap v1"));
  auto keys = (*db)->Exec("SELECT id, wrapped FROM keyring WHERE wrapped IS NOT NULL");
  ASSERT_TRUE(keys.ok() && keys->size() >= 1);
  for (int i = 0; i < keys->size(); ++i) {
    auto raw = wrap->Open(*pg::DecodeBytea(keys->Text(i, 1)), "keyring/" + keys->Text(i, 0));
    ASSERT_TRUE(raw.ok()) << raw.status().ToString();
    ring.Add(KeyId(static_cast<uint32_t>(keys->Int(i, 0))), *SecretBox::Create(*raw));
  }
  auto pw = ring.Open(*pg::DecodeBytea(rows->Text(0, 0)), "conn/" + id + "/c/password");
  ASSERT_TRUE(pw.ok());
  EXPECT_EQ(*pw, "pw-1");
  auto extra = ring.Open(*pg::DecodeBytea(rows->Text(0, 1)), "conn/" + id + "/c/extra");
  ASSERT_TRUE(extra.ok());
  EXPECT_EQ(Json::parse(*extra)["auth"]["token"], "tk-1");
  EXPECT_EQ(Json::parse(*extra)["keys"][0]["api_key"], "k-1");
  auto var = (*db)->Exec("SELECT value_enc FROM variables v JOIN deployments d ON "
                         "d.id = v.deployment_id WHERE d.name = $1 AND v.key = 'token_x'",
                         {dep});
  ASSERT_TRUE(var.ok() && var->size() == 1);
  EXPECT_EQ(*ring.Open(*pg::DecodeBytea(var->Text(0, 0)), "var/" + id + "/token_x"), "real");
  auto envrow = (*db)->Exec("SELECT value_enc FROM env_vars WHERE deployment_id = $1 AND "
                            "key = 'SECRET_ENV'",
                            {id});
  ASSERT_TRUE(envrow.ok() && envrow->size() == 1);
  EXPECT_EQ(*ring.Open(*pg::DecodeBytea(envrow->Text(0, 0)), "env/" + id + "/SECRET_ENV"), "e-1");
}

// Sends raw bytes to the region and returns what it answers (up to the first 4 KiB).
std::string RawRequest(int port, const std::string& bytes) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size())) {
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) out.assign(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

TEST_F(ApiTest, BodiesWithoutALengthAreRefused) {
  std::string chunked = RawRequest(region_->http_port(),
                                   "POST /api/v1/deployments HTTP/1.1\r\nHost: t\r\n"
                                   "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                                   "10\r\n{\"name\": \"chunk\"}\r\n0\r\n\r\n");
  EXPECT_EQ(chunked.rfind("HTTP/1.1 411", 0), 0u) << chunked;
  EXPECT_NE(chunked.find("Content-Length"), std::string::npos) << chunked;
  ExpectError(Call("GET", "/api/v1/deployments/chunk"), 404, "no deployment");
}

TEST_F(ApiTest, DeeplyNestedJsonIsRefused) {
  std::string root = Root(NewDeployment("deep"));
  std::string deep = std::string(100000, '[') + std::string(100000, ']');
  ExpectError(region_->Call("POST", root + "/variables", "{\"key\": \"k\", \"value\": " + deep + "}"),
              422, "nests deeper than 64 levels");
  Json conn = {{"connection_id", "c"}, {"conn_type", "http"}, {"extra", "{\"a\": " + deep + "}"}};
  ExpectError(Call("POST", root + "/connections", conn), 422, "nests deeper");
  // The region is still there, and nothing was stored.
  EXPECT_EQ(Body(Call("GET", root + "/variables"))["total_entries"], 0);
  EXPECT_EQ(Body(Call("GET", root + "/connections"))["total_entries"], 0);
}

TEST_F(ApiTest, UnknownRoutesAndMethods) {
  ExpectError(Call("GET", "/nothing/here"), 404, "Not Found");
  ExpectError(Call("PUT", "/api/v1/deployments"), 405, "Method Not Allowed");
}

}  // namespace
}  // namespace tandem::testing
