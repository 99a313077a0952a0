// Responses of the Airflow-shaped endpoints, checked against the schemas of Airflow's own
// OpenAPI description (tests/reference/airflow-rest-api-v2.yaml) with valijson.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>
#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

#include "harness/region_harness.h"

namespace tandem::testing {
namespace {

using Json = nlohmann::json;

Json YamlToJson(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map: {
      Json j = Json::object();
      for (const auto& kv : n) j[kv.first.as<std::string>()] = YamlToJson(kv.second);
      return j;
    }
    case YAML::NodeType::Sequence: {
      Json j = Json::array();
      for (const auto& e : n) j.push_back(YamlToJson(e));
      return j;
    }
    case YAML::NodeType::Scalar: {
      std::string s = n.Scalar();
      if (n.Tag() == "!") return s;  // quoted: a string whatever it looks like
      if (s == "true") return true;
      if (s == "false") return false;
      if (s == "null" || s == "~") return nullptr;
      char* end = nullptr;
      long long i = strtoll(s.c_str(), &end, 10);
      if (!s.empty() && *end == '\0') return i;
      double d = strtod(s.c_str(), &end);
      if (!s.empty() && *end == '\0') return d;
      return s;
    }
    default:
      return nullptr;
  }
}

class SpecTest : public SharedRegionTest {
 protected:
  static void SetUpTestSuite() {
    SharedRegionTest::SetUpTestSuite();
    YAML::Node spec = YAML::LoadFile(std::string(TANDEM_SOURCE_DIR) +
                                     "/tests/reference/airflow-rest-api-v2.yaml");
    components_ = new Json(YamlToJson(spec["components"]));
  }
  static void TearDownTestSuite() {
    delete components_;
    components_ = nullptr;
    SharedRegionTest::TearDownTestSuite();
  }

  // Asserts that `body` is valid against components/schemas/<name> of the spec.
  static void ExpectMatches(const std::string& name, const std::string& body) {
    Json doc = {{"$ref", "#/components/schemas/" + name}, {"components", *components_}};
    valijson::Schema schema;
    valijson::SchemaParser parser;
    valijson::adapters::NlohmannJsonAdapter schema_adapter(doc);
    parser.populateSchema(schema_adapter, schema);
    Json value = Json::parse(body, nullptr, false);
    ASSERT_FALSE(value.is_discarded()) << body;
    valijson::Validator validator;
    valijson::ValidationResults results;
    valijson::adapters::NlohmannJsonAdapter value_adapter(value);
    bool ok = validator.validate(schema, value_adapter, &results);
    std::string why;
    valijson::ValidationResults::Error e;
    while (results.popError(e)) {
      std::string ctx;
      for (const auto& c : e.context) ctx += c;
      why += ctx + ": " + e.description + "\n";
    }
    EXPECT_TRUE(ok) << name << " does not match:\n" << why << body;
  }

  static std::string Root() { return "/deployments/spec/api/v2"; }
  static Json* components_;
};
Json* SpecTest::components_ = nullptr;

TEST_F(SpecTest, ResponsesMatchAirflowSchemas) {
  ASSERT_EQ(region_->Call("POST", "/api/v1/deployments", R"({"name": "spec"})").status, 201);
  auto v = region_->Call("POST", Root() + "/variables",
                         R"({"key": "k", "value": {"n": 1}, "description": null})");
  ASSERT_EQ(v.status, 201) << v.body;
  ExpectMatches("VariableResponse", v.body);
  region_->Call("POST", Root() + "/variables", R"({"key": "my_secret", "value": "s"})");
  ExpectMatches("VariableCollectionResponse", region_->Call("GET", Root() + "/variables").body);
  ExpectMatches("VariableResponse", region_->Call("GET", Root() + "/variables/my_secret").body);

  auto c = region_->Call("POST", Root() + "/connections",
                         R"({"connection_id": "c1", "conn_type": "http", "port": 443,
                             "password": "p", "extra": "{\"token\": \"t\"}"})");
  ASSERT_EQ(c.status, 201) << c.body;
  ExpectMatches("ConnectionResponse", c.body);
  region_->Call("POST", Root() + "/connections", R"({"connection_id": "c2", "conn_type": "x"})");
  ExpectMatches("ConnectionCollectionResponse",
                region_->Call("GET", Root() + "/connections").body);

  auto p = region_->Call("POST", Root() + "/pools", R"({"name": "p1", "slots": 3})");
  ASSERT_EQ(p.status, 201) << p.body;
  ExpectMatches("PoolResponse", p.body);
  ExpectMatches("PoolResponse",
                region_->Call("PATCH", Root() + "/pools/p1", R"({"slots": 4})").body);
  ExpectMatches("PoolCollectionResponse", region_->Call("GET", Root() + "/pools").body);

  ExpectMatches("BulkResponse",
                region_->Call("PATCH", Root() + "/variables",
                              R"({"actions": [{"action": "create", "entities": [
                                   {"key": "bk", "value": "v"}, {"key": "k", "value": "v"}]},
                                 {"action": "delete", "entities": ["bk"]}]})")
                    .body);

  for (const auto& [method, path, body] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"GET", Root() + "/variables/none", ""},
           {"POST", Root() + "/pools", R"({"name": "p1", "slots": 3})"},
           {"DELETE", Root() + "/pools/default_pool", ""},
           {"POST", Root() + "/connections", "{"}}) {
    auto r = region_->Call(method, path, body);
    EXPECT_GE(r.status, 400) << path;
    ExpectMatches("HTTPExceptionResponse", r.body);
  }
}

// DAGs, runs, task instances, XComs, import errors and monitoring, on a deployment whose bundle
// has one DAG and one broken file (uploaded through tandem's bundle endpoint).
TEST_F(SpecTest, PipelineResponsesMatchAirflowSchemas) {
  ASSERT_EQ(region_->Call("POST", "/api/v1/deployments", R"({"name": "spec-pipelines"})").status,
            201);
  Json files = {{"etl.yaml",
                 "etl:\n  tags: [t]\n  tasks:\n    a: {operator: bash, bash_command: \"echo a\"}\n"
                 "    b: {operator: empty, dependencies: [a]}\n"},
                {"broken.yaml", "bad:\n  tasks:\n    x: {operator: nope}\n"}};
  const std::string root = "/deployments/spec-pipelines/api/v2";
  auto b = region_->Call("POST", "/api/v1/deployments/spec-pipelines/bundle",
                         Json{{"files", files}}.dump());
  ASSERT_TRUE(b.status == 200 || b.status == 201) << b.status << " " << b.body;

  ExpectMatches("DAGCollectionResponse", region_->Call("GET", root + "/dags").body);
  ExpectMatches("DAGResponse", region_->Call("GET", root + "/dags/etl").body);
  ExpectMatches("DAGResponse",
                region_->Call("PATCH", root + "/dags/etl", R"({"is_paused": true})").body);

  const std::string runs = root + "/dags/etl/dagRuns";
  auto t = region_->Call("POST", runs,
                         R"({"logical_date": null, "dag_run_id": "r1", "conf": {"k": [1]}})");
  ASSERT_EQ(t.status, 200) << t.body;
  ExpectMatches("DAGRunResponse", t.body);
  ExpectMatches("DAGRunResponse",
                region_->Call("POST", runs, R"({"logical_date": "2024-01-01T00:00:00Z"})").body);
  ExpectMatches("DAGRunCollectionResponse", region_->Call("GET", runs).body);
  ExpectMatches("DAGRunResponse", region_->Call("GET", runs + "/r1").body);
  ExpectMatches("DAGRunResponse", region_->Call("PATCH", runs + "/r1", R"({"note": "n"})").body);

  const std::string tis = runs + "/r1/taskInstances";
  ExpectMatches("TaskInstanceCollectionResponse", region_->Call("GET", tis).body);
  ExpectMatches("TaskInstanceResponse", region_->Call("GET", tis + "/a").body);
  ExpectMatches("TaskInstanceHistoryCollectionResponse",
                region_->Call("GET", tis + "/a/tries").body);
  ExpectMatches("TaskInstanceCollectionResponse",
                region_->Call("POST", runs + "/r1/clear", "{}").body);
  ExpectMatches("DAGRunResponse",
                region_->Call("POST", runs + "/r1/clear", R"({"dry_run": false})").body);
  auto cleared = region_->Call("POST", root + "/dags/etl/clearTaskInstances",
                               R"({"dag_run_id": "r1", "only_failed": false})");
  ExpectMatches("TaskInstanceCollectionResponse", cleared.body);
  ExpectMatches("XComCollectionResponse", region_->Call("GET", tis + "/a/xcomEntries").body);

  auto errors = region_->Call("GET", root + "/importErrors");
  ExpectMatches("ImportErrorCollectionResponse", errors.body);
  Json list = Json::parse(errors.body, nullptr, false);
  ASSERT_EQ(list["import_errors"].size(), 1u) << errors.body;
  std::string id = list["import_errors"][0]["import_error_id"].dump();
  ExpectMatches("ImportErrorResponse", region_->Call("GET", root + "/importErrors/" + id).body);

  ExpectMatches("HealthInfoResponse", region_->Call("GET", root + "/monitor/health").body);
  ExpectMatches("VersionInfo", region_->Call("GET", root + "/version").body);

  for (const auto& [method, path, body] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"GET", root + "/dags/none", ""},
           {"POST", runs, R"({"logical_date": null, "dag_run_id": "r1"})"},
           {"GET", tis + "/a/logs/1", ""},
           {"GET", tis + "/a/xcomEntries/none", ""},
           {"GET", root + "/importErrors/0", ""}}) {
    auto r = region_->Call(method, path, body);
    EXPECT_GE(r.status, 400) << path;
    ExpectMatches("HTTPExceptionResponse", r.body);
  }
}

// The checker itself must catch a wrong shape, or the test above proves nothing.
TEST_F(SpecTest, CheckerRejectsAWrongShape) {
  Json doc = {{"$ref", "#/components/schemas/PoolResponse"}, {"components", *components_}};
  valijson::Schema schema;
  valijson::SchemaParser parser;
  valijson::adapters::NlohmannJsonAdapter schema_adapter(doc);
  parser.populateSchema(schema_adapter, schema);
  Json missing_slots = {{"name", "p"}, {"description", nullptr}};
  valijson::Validator validator;
  valijson::adapters::NlohmannJsonAdapter adapter(missing_slots);
  EXPECT_FALSE(validator.validate(schema, adapter, nullptr));
}

}  // namespace
}  // namespace tandem::testing
