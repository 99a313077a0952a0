// The Airflow v2 pipeline endpoints over real HTTP: DAGs, DAG runs, task instances, logs,
// XComs, import errors, health and version, with a bundle uploaded through tandem's
// /api/v1/deployments/{deployment}/bundle. Every bad input must be refused, and a log path
// must never read anything the store has not vouched for in this deployment.
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>

#include "harness/region_harness.h"

namespace tandem::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

// A manual-only DAG of two tasks; new DAGs arrive paused, so its runs stay queued until a test
// unpauses it.
constexpr const char* kEtl =
    "etl:\n"
    "  description: Extract and load\n"
    "  tags: [daily]\n"
    "  tasks:\n"
    "    extract: {operator: bash, bash_command: \"echo extracted; echo second line\"}\n"
    "    load: {operator: empty, dependencies: [extract]}\n";
// The unknown dependency is on line 8.
constexpr const char* kBroken =
    "broken_dag:\n"
    "  tasks:\n"
    "    a: {operator: empty}\n"
    "    b:\n"
    "      operator: empty\n"
    "      dependencies:\n"
    "        - a\n"
    "        - extrac\n";

class PipelinesApiTest : public SharedRegionTest {
 protected:
  static HttpReply Call(const std::string& m, const std::string& p, const Json& body = nullptr) {
    return region_->Call(m, p, body.is_null() ? "" : body.dump());
  }
  static Json Body(const HttpReply& r) { return Json::parse(r.body, nullptr, false); }
  // Asserts an error answer: the status and {"detail": "..."} containing `words`.
  static void ExpectError(const HttpReply& r, int status, const std::string& words = "") {
    EXPECT_EQ(r.status, status) << r.body;
    Json j = Body(r);
    ASSERT_TRUE(j.is_object() && j.contains("detail")) << r.body;
    EXPECT_NE(j["detail"].get<std::string>().find(words), std::string::npos) << r.body;
  }
  static std::string Root(const std::string& d) { return "/deployments/" + d + "/api/v2"; }
  // A new deployment running `files` as its bundle; returns the Airflow root of it.
  static std::string Deployed(const std::string& name,
                              const std::map<std::string, std::string>& files) {
    auto d = Call("POST", "/api/v1/deployments", {{"name", name}});
    EXPECT_EQ(d.status, 201) << d.body;
    auto b = Call("POST", "/api/v1/deployments/" + name + "/bundle", {{"files", files}});
    EXPECT_TRUE(b.status == 200 || b.status == 201) << b.status << " " << b.body;
    return Root(name);
  }
  static std::string Runs(const std::string& root) { return root + "/dags/etl/dagRuns"; }
  static std::string Tis(const std::string& root, const std::string& run) {
    return Runs(root) + "/" + run + "/taskInstances";
  }
  static Json Trigger(const std::string& root, const std::string& run_id) {
    auto r = Call("POST", Runs(root), {{"logical_date", nullptr}, {"dag_run_id", run_id}});
    EXPECT_EQ(r.status, 200) << r.body;
    return Body(r);
  }
  // Waits (at most a minute) until the task instance reaches a finished state.
  static Json WaitFinished(const std::string& ti_path) {
    Json ti;
    for (auto until = std::chrono::steady_clock::now() + 60s;
         std::chrono::steady_clock::now() < until; std::this_thread::sleep_for(200ms)) {
      ti = Body(Call("GET", ti_path));
      Json state = ti.is_object() ? ti.value("state", Json()) : Json();
      if (state == "success" || state == "failed" || state == "upstream_failed") break;
    }
    return ti;
  }
};

TEST_F(PipelinesApiTest, DagsListGetAndPause) {
  std::string root = Deployed("dags", {{"etl.yaml", kEtl}});
  auto list = Call("GET", root + "/dags");
  ASSERT_EQ(list.status, 200) << list.body;
  Json l = Body(list);
  EXPECT_EQ(l["total_entries"], 1);
  ASSERT_EQ(l["dags"].size(), 1u);
  Json d = l["dags"][0];
  EXPECT_EQ(d["dag_id"], "etl");
  EXPECT_EQ(d["dag_display_name"], "etl");
  EXPECT_EQ(d["is_paused"], true);  // new DAGs are paused, as in Airflow
  EXPECT_EQ(d["is_stale"], false);
  EXPECT_EQ(d["bundle_name"], "dags-folder");
  EXPECT_EQ(d["fileloc"], "etl.yaml");
  EXPECT_EQ(d["relative_fileloc"], "etl.yaml");
  EXPECT_EQ(d["description"], "Extract and load");
  ASSERT_EQ(d["tags"].size(), 1u);
  EXPECT_EQ(d["tags"][0]["name"], "daily");
  EXPECT_TRUE(d["timetable_summary"].is_null());
  EXPECT_TRUE(d["file_token"].is_string());
  EXPECT_TRUE(d["last_expired"].is_null());
  EXPECT_EQ(Body(Call("GET", root + "/dags/etl")), d);

  auto p = Call("PATCH", root + "/dags/etl", {{"is_paused", false}});
  ASSERT_EQ(p.status, 200) << p.body;
  EXPECT_EQ(Body(p)["is_paused"], false);
  EXPECT_EQ(Body(Call("GET", root + "/dags?paused=false"))["total_entries"], 1);
  EXPECT_EQ(Body(Call("GET", root + "/dags?paused=true"))["total_entries"], 0);
  EXPECT_EQ(Body(Call("GET", root + "/dags?dag_id_pattern=et"))["total_entries"], 1);
  EXPECT_EQ(Body(Call("GET", root + "/dags?dag_id_pattern=zzz"))["total_entries"], 0);
  auto again = Call("PATCH", root + "/dags/etl?update_mask=is_paused", {{"is_paused", true}});
  EXPECT_EQ(Body(again)["is_paused"], true);

  ExpectError(Call("GET", root + "/dags/nope"), 404);
  ExpectError(Call("PATCH", root + "/dags/nope", {{"is_paused", true}}), 404);
  ExpectError(Call("PATCH", root + "/dags/etl", {{"is_paused", true}, {"owners", "x"}}), 422,
              "unknown field `owners`");
  ExpectError(Call("PATCH", root + "/dags/etl", Json::object()), 422, "`is_paused` is required");
  ExpectError(Call("PATCH", root + "/dags/etl", {{"is_paused", "yes"}}), 422, "true or false");
  ExpectError(Call("PATCH", root + "/dags/etl?update_mask=tags", {{"is_paused", false}}), 422,
              "update_mask");
  ExpectError(Call("GET", root + "/dags?paused=maybe"), 422, "`paused`");
  ExpectError(Call("GET", root + "/dags?limit=x"), 422, "`limit`");
  EXPECT_EQ(Body(Call("GET", root + "/dags/etl"))["is_paused"], true);  // refusals changed nothing
  ExpectError(Call("GET", Root("no-such-deployment") + "/dags"), 404, "no deployment");
}

TEST_F(PipelinesApiTest, TriggerListPatchAndDeleteRuns) {
  std::string root = Deployed("runs", {{"etl.yaml", kEtl}});
  auto t = Call(
      "POST", Runs(root),
      {{"logical_date", nullptr}, {"dag_run_id", "r1"}, {"conf", {{"a", 1}}}, {"note", "first"}});
  ASSERT_EQ(t.status, 200) << t.body;
  Json r1 = Body(t);
  EXPECT_EQ(r1["dag_run_id"], "r1");
  EXPECT_EQ(r1["dag_id"], "etl");
  EXPECT_EQ(r1["state"], "queued");
  EXPECT_EQ(r1["run_type"], "manual");
  EXPECT_EQ(r1["triggered_by"], "rest_api");
  EXPECT_EQ(r1["conf"], Json({{"a", 1}}));
  EXPECT_EQ(r1["note"], "first");
  EXPECT_TRUE(r1["logical_date"].is_null());
  EXPECT_TRUE(r1["duration"].is_null());
  EXPECT_TRUE(r1["triggering_user_name"].is_null());
  ASSERT_EQ(r1["dag_versions"].size(), 1u);
  EXPECT_EQ(r1["dag_versions"][0]["dag_id"], "etl");
  EXPECT_EQ(r1["dag_versions"][0]["version_number"], 1);

  auto dated = Call("POST", Runs(root),
                    {{"logical_date", "2024-01-01T00:00:00Z"},
                     {"dag_run_id", "r2"},
                     {"data_interval_start", "2024-01-01T00:00:00Z"},
                     {"data_interval_end", "2024-01-02T00:00:00+00:00"}});
  ASSERT_EQ(dated.status, 200) << dated.body;
  EXPECT_NE(Body(dated)["logical_date"].get<std::string>().find("2024-01-01T00:00:00"),
            std::string::npos);

  // Taken run id, taken logical date, unknown DAG.
  ExpectError(Call("POST", Runs(root), {{"logical_date", nullptr}, {"dag_run_id", "r1"}}), 409);
  ExpectError(
      Call("POST", Runs(root), {{"logical_date", "2024-01-01T00:00:00Z"}, {"dag_run_id", "r3"}}),
      409);
  ExpectError(Call("POST", root + "/dags/nope/dagRuns", {{"logical_date", nullptr}}), 404);
  // Bad bodies.
  ExpectError(Call("POST", Runs(root), {{"logical_date", nullptr}, {"colour", "red"}}), 422,
              "unknown field `colour`");
  ExpectError(Call("POST", Runs(root), {{"dag_run_id", "x"}}), 422, "`logical_date` is required");
  ExpectError(Call("POST", Runs(root), {{"logical_date", "yesterday"}}), 422, "logical_date");
  ExpectError(Call("POST", Runs(root), {{"logical_date", 20240101}}), 422, "logical_date");
  ExpectError(Call("POST", Runs(root), {{"logical_date", nullptr}, {"conf", {1, 2}}}), 422,
              "`conf` must be an object");
  ExpectError(Call("POST", Runs(root), {{"logical_date", nullptr}, {"conf", "{}"}}), 422,
              "`conf` must be an object");
  ExpectError(
      Call("POST", Runs(root), {{"logical_date", nullptr}, {"data_interval_start", "2024-01-01"}}),
      422, "data_interval_end");
  ExpectError(Call("POST", Runs(root), {{"logical_date", nullptr}, {"dag_run_id", "a/b"}}), 422);
  ExpectError(Call("POST", Runs(root), {{"logical_date", nullptr}, {"dag_run_id", "a..b"}}), 422);
  ExpectError(region_->Call("POST", Runs(root), "{"), 422, "not valid JSON");

  Json all = Body(Call("GET", Runs(root)));
  EXPECT_EQ(all["total_entries"], 2) << all;  // nothing refused was created
  EXPECT_EQ(Body(Call("GET", Runs(root) + "?state=queued"))["total_entries"], 2);
  EXPECT_EQ(Body(Call("GET", Runs(root) + "?state=success&state=failed"))["total_entries"], 0);
  EXPECT_EQ(Body(Call("GET", Runs(root) + "?run_id_pattern=r1"))["total_entries"], 1);
  EXPECT_EQ(Body(Call("GET", root + "/dags/~/dagRuns"))["total_entries"], 2);
  Json page = Body(Call("GET", Runs(root) + "?limit=1&offset=1"));
  EXPECT_EQ(page["total_entries"], 2);
  EXPECT_EQ(page["dag_runs"].size(), 1u);
  ExpectError(Call("GET", Runs(root) + "?state=sleeping"), 422, "`state`");
  ExpectError(Call("GET", Runs(root) + "?order_by=colour"), 422, "colour");

  // One run reads the same alone as in the list.
  Json listed = Body(Call("GET", Runs(root) + "?run_id_pattern=r1"))["dag_runs"];
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(Body(Call("GET", Runs(root) + "/r1")), listed[0]);
  EXPECT_EQ(Body(Call("GET", Runs(root) + "/r1"))["conf"], Json({{"a", 1}}));
  ExpectError(Call("GET", Runs(root) + "/nope"), 404);

  auto note = Call("PATCH", Runs(root) + "/r1", {{"note", "second"}});
  ASSERT_EQ(note.status, 200) << note.body;
  EXPECT_EQ(Body(note)["note"], "second");
  EXPECT_EQ(Body(note)["state"], "queued");
  auto failed = Call("PATCH", Runs(root) + "/r1?update_mask=state", {{"state", "failed"}});
  ASSERT_EQ(failed.status, 200) << failed.body;
  EXPECT_EQ(Body(failed)["state"], "failed");
  EXPECT_EQ(Body(failed)["note"], "second");
  ExpectError(Call("PATCH", Runs(root) + "/r1", {{"state", "running"}}), 422, "`state`");
  ExpectError(Call("PATCH", Runs(root) + "/r1", {{"conf", Json::object()}}), 422, "unknown field");
  ExpectError(Call("PATCH", Runs(root) + "/r1", {{"note", std::string(1001, 'n')}}), 422, "note");
  ExpectError(Call("PATCH", Runs(root) + "/r1?update_mask=conf", {{"note", "x"}}), 422,
              "update_mask");
  ExpectError(Call("PATCH", Runs(root) + "/nope", {{"note", "x"}}), 404);

  EXPECT_EQ(Call("DELETE", Runs(root) + "/r2").status, 204);
  ExpectError(Call("GET", Runs(root) + "/r2"), 404);
  ExpectError(Call("DELETE", Runs(root) + "/r2"), 404);
  EXPECT_EQ(Body(Call("GET", Runs(root)))["total_entries"], 1);
}

TEST_F(PipelinesApiTest, ClearIsADryRunByDefault) {
  std::string root = Deployed("clear", {{"etl.yaml", kEtl}});
  Trigger(root, "r1");
  auto dry = Call("POST", Runs(root) + "/r1/clear", Json::object());
  ASSERT_EQ(dry.status, 200) << dry.body;
  Json d = Body(dry);
  ASSERT_TRUE(d.contains("task_instances")) << d;
  EXPECT_EQ(d["total_entries"], d["task_instances"].size());
  EXPECT_EQ(Body(Call("GET", Runs(root) + "/r1"))["state"], "queued");

  ExpectError(Call("POST", Runs(root) + "/r1/clear", {{"dry_run", "no"}}), 422, "dry_run");
  ExpectError(Call("POST", Runs(root) + "/r1/clear", {{"reset", true}}), 422, "unknown field");
  ExpectError(Call("POST", Runs(root) + "/nope/clear", Json::object()), 404);

  auto real = Call("POST", Runs(root) + "/r1/clear", {{"dry_run", false}});
  ASSERT_EQ(real.status, 200) << real.body;
  EXPECT_EQ(Body(real)["dag_run_id"], "r1");  // a real clear answers with the run
  EXPECT_EQ(Body(real)["state"], "queued");

  auto some = Call("POST", root + "/dags/etl/clearTaskInstances",
                   {{"dag_run_id", "r1"}, {"task_ids", {"load"}}, {"only_failed", false}});
  ASSERT_EQ(some.status, 200) << some.body;
  const Json cleared = Body(some);  // range-for over a member of a temporary would dangle
  for (const auto& ti : cleared["task_instances"]) EXPECT_EQ(ti["task_id"], "load");
  ExpectError(Call("POST", root + "/dags/etl/clearTaskInstances", {{"include_past", true}}), 422,
              "include_past");
  ExpectError(Call("POST", root + "/dags/etl/clearTaskInstances", Json::object()), 422,
              "dag_run_id");
}

TEST_F(PipelinesApiTest, TaskInstancesAndTries) {
  std::string root = Deployed("tis", {{"etl.yaml", kEtl}});
  Trigger(root, "r1");
  auto list = Call("GET", Tis(root, "r1"));
  ASSERT_EQ(list.status, 200) << list.body;
  Json l = Body(list);
  EXPECT_EQ(l["total_entries"], 2);
  std::set<std::string> ids;
  for (const auto& ti : l["task_instances"]) ids.insert(ti["task_id"].get<std::string>());
  EXPECT_EQ(ids, (std::set<std::string>{"extract", "load"}));
  EXPECT_EQ(Body(Call("GET", Tis(root, "r1") + "?state=success"))["total_entries"], 0);
  EXPECT_EQ(Body(Call("GET", Tis(root, "r1") + "?limit=1"))["task_instances"].size(), 1u);
  ExpectError(Call("GET", Tis(root, "r1") + "?state=sleeping"), 422, "`state`");
  EXPECT_EQ(Body(Call("GET", root + "/dags/~/dagRuns/~/taskInstances"))["total_entries"], 2);
  ExpectError(Call("GET", Tis(root, "nope")), 404);

  auto get = Call("GET", Tis(root, "r1") + "/extract");
  ASSERT_EQ(get.status, 200) << get.body;
  Json ti = Body(get);
  EXPECT_EQ(ti["task_id"], "extract");
  EXPECT_EQ(ti["dag_run_id"], "r1");
  EXPECT_EQ(ti["map_index"], -1);
  EXPECT_EQ(ti["operator"], "BashOperator");
  EXPECT_EQ(ti["pool"], "default_pool");
  EXPECT_TRUE(ti["state"].is_null()) << ti;  // the DAG is paused: nothing was scheduled
  EXPECT_TRUE(ti["dag_version"].is_object()) << ti;
  EXPECT_EQ(Body(Call("GET", Tis(root, "r1") + "/extract?map_index=-1")), ti);
  ExpectError(Call("GET", Tis(root, "r1") + "/extract?map_index=2"), 404, "map_index");
  ExpectError(Call("GET", Tis(root, "r1") + "/nope"), 404);

  auto tries = Call("GET", Tis(root, "r1") + "/extract/tries");
  ASSERT_EQ(tries.status, 200) << tries.body;
  EXPECT_EQ(Body(tries)["total_entries"], Body(tries)["task_instances"].size());
  ExpectError(Call("GET", Tis(root, "r1") + "/extract/tries/7"), 404);
  ExpectError(Call("GET", Tis(root, "r1") + "/extract/tries/x"), 422, "integer");
}

TEST_F(PipelinesApiTest, LogPathsReadOnlyWhatTheStoreVouchesFor) {
  std::string a = Deployed("logs-a", {{"etl.yaml", kEtl}});
  std::string b = Deployed("logs-b", {{"etl.yaml", kEtl}});
  Trigger(a, "r1");
  // Not run yet: there is no try 1.
  ExpectError(Call("GET", Tis(a, "r1") + "/extract/logs/1"), 404);
  // Another deployment's run, and ids made to climb out of the log root.
  ExpectError(Call("GET", Tis(b, "r1") + "/extract/logs/1"), 404);
  for (const std::string& path :
       {Runs(a) + "/%2E%2E/taskInstances/extract/logs/1",
        Runs(a) + "/r1/taskInstances/%2E%2E/logs/1",
        Runs(a) + "/r1/taskInstances/..%2F..%2F..%2Fetc%2Fpasswd/logs/1",
        a + "/dags/%2E%2E/dagRuns/r1/taskInstances/extract/logs/1",
        Runs(a) + "/r1%2F..%2F..%2Flogs-b/taskInstances/extract/logs/1"}) {
    auto r = Call("GET", path);
    EXPECT_TRUE(r.status == 404 || r.status == 422) << path << ": " << r.status << " " << r.body;
    EXPECT_EQ(r.body.find("extracted"), std::string::npos) << path;
  }
  ExpectError(Call("GET", Tis(a, "r1") + "/extract/logs/one"), 422, "integer");
  ExpectError(Call("GET", Tis(a, "r1") + "/extract/logs/-1"), 404);
}

// Needs the scheduler and a worker: the DAG is unpaused and its run executes.
TEST_F(PipelinesApiTest, LogsOfAFinishedTry) {
  std::string root = Deployed("logs-run", {{"etl.yaml", kEtl}});
  ASSERT_EQ(Call("PATCH", root + "/dags/etl", {{"is_paused", false}}).status, 200);
  Trigger(root, "r1");
  Json ti = WaitFinished(Tis(root, "r1") + "/extract");
  ASSERT_EQ(ti["state"], "success") << ti;
  EXPECT_EQ(ti["try_number"], 1);
  EXPECT_FALSE(ti["duration"].is_null());
  Json tries = Body(Call("GET", Tis(root, "r1") + "/extract/tries"));
  ASSERT_GE(tries["total_entries"], 1) << tries;
  EXPECT_EQ(Body(Call("GET", Tis(root, "r1") + "/extract/tries/1"))["state"], "success");

  const std::string log = Tis(root, "r1") + "/extract/logs/1";
  auto r = Call("GET", log);
  ASSERT_EQ(r.status, 200) << r.body;
  Json l = Body(r);
  ASSERT_TRUE(l["content"].is_array()) << l;
  bool seen = false;
  for (const auto& m : l["content"]) seen = seen || m["event"] == "extracted";
  EXPECT_TRUE(seen) << l;
  ASSERT_TRUE(l["continuation_token"].is_string()) << l;
  // Resuming from the token reads nothing more; a token that is not one is refused.
  auto more = Body(Call("GET", log + "?token=" + l["continuation_token"].get<std::string>()));
  EXPECT_EQ(more["content"], Json::array()) << more;
  EXPECT_EQ(more["continuation_token"], l["continuation_token"]);
  ExpectError(Call("GET", log + "?token=%21%21"), 422, "token");
  EXPECT_EQ(Body(Call("GET", log + "?full_content=true"))["content"], l["content"]);

  httplib::Client c(region_->url());
  c.set_bearer_token_auth(OwnerToken());
  auto plain = c.Get(log, {{"Accept", "text/plain"}});
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->status, 200);
  EXPECT_NE(plain->body.find("extracted\n"), std::string::npos) << plain->body;
  EXPECT_NE(plain->get_header_value("Content-Type").find("text/plain"), std::string::npos);
  auto nd = c.Get(log, {{"Accept", "application/x-ndjson"}});
  ASSERT_TRUE(nd);
  EXPECT_NE(nd->body.find("{\"event\":\"extracted\"}\n"), std::string::npos) << nd->body;

  // The same ids under another deployment still read nothing.
  std::string other = Deployed("logs-other", {{"etl.yaml", kEtl}});
  ExpectError(Call("GET", Tis(other, "r1") + "/extract/logs/1"), 404);
}

TEST_F(PipelinesApiTest, XComsOfATask) {
  std::string root = Deployed("xcoms", {{"etl.yaml", kEtl}});
  Trigger(root, "r1");
  auto list = Call("GET", Tis(root, "r1") + "/extract/xcomEntries");
  ASSERT_EQ(list.status, 200) << list.body;
  EXPECT_EQ(Body(list)["total_entries"], 0);
  EXPECT_EQ(Body(list)["xcom_entries"], Json::array());
  ExpectError(Call("GET", Tis(root, "r1") + "/extract/xcomEntries/return_value"), 404);
  ExpectError(Call("GET", Tis(root, "r1") + "/extract/xcomEntries/k?stringify=perhaps"), 422,
              "stringify");
  EXPECT_EQ(Call("GET", Tis(root, "r1") + "/~/xcomEntries").status, 200);
}

TEST_F(PipelinesApiTest, ImportErrorsNameFileAndLine) {
  std::string root = Deployed("imports", {{"etl.yaml", kEtl}, {"broken.yaml", kBroken}});
  auto list = Call("GET", root + "/importErrors");
  ASSERT_EQ(list.status, 200) << list.body;
  Json l = Body(list);
  ASSERT_EQ(l["total_entries"], 1) << l;
  Json e = l["import_errors"][0];
  EXPECT_EQ(e["filename"], "broken.yaml");
  EXPECT_EQ(e["bundle_name"], "dags-folder");
  std::string trace = e["stack_trace"];
  EXPECT_EQ(trace.rfind("broken.yaml:8: ", 0), 0u) << trace;
  EXPECT_NE(trace.find("extrac"), std::string::npos) << trace;
  EXPECT_EQ(Body(Call("GET", root + "/importErrors/" + e["import_error_id"].dump())), e);
  ExpectError(Call("GET", root + "/importErrors/999999999"), 404);
  ExpectError(Call("GET", root + "/importErrors/abc"), 422, "integer");
  // The broken file brought no DAG; the good one is there.
  EXPECT_EQ(Body(Call("GET", root + "/dags"))["total_entries"], 1);
  ExpectError(Call("GET", root + "/dags/broken_dag"), 404);
  // Another deployment does not see them.
  std::string clean = Deployed("imports-clean", {{"etl.yaml", kEtl}});
  EXPECT_EQ(Body(Call("GET", clean + "/importErrors"))["total_entries"], 0);
  ExpectError(Call("GET", clean + "/importErrors/" + e["import_error_id"].dump()), 404);
}

TEST_F(PipelinesApiTest, HealthAndVersion) {
  ASSERT_EQ(Call("POST", "/api/v1/deployments", {{"name", "mon"}}).status, 201);
  Json j;
  // The scheduler is healthy once it has completed a pass, soon after the region starts.
  for (auto until = std::chrono::steady_clock::now() + 30s;
       std::chrono::steady_clock::now() < until; std::this_thread::sleep_for(200ms)) {
    auto h = Call("GET", Root("mon") + "/monitor/health");
    ASSERT_EQ(h.status, 200) << h.body;
    j = Body(h);
    if (j["scheduler"]["status"] == "healthy") break;
  }
  EXPECT_EQ(j["metadatabase"]["status"], "healthy");
  EXPECT_EQ(j["scheduler"]["status"], "healthy") << j;
  EXPECT_TRUE(j["scheduler"]["latest_scheduler_heartbeat"].is_string()) << j;
  EXPECT_TRUE(j["triggerer"]["status"].is_null());
  EXPECT_TRUE(j["dag_processor"].is_null());
  auto v = Call("GET", Root("mon") + "/version");
  ASSERT_EQ(v.status, 200) << v.body;
  EXPECT_FALSE(Body(v)["version"].get<std::string>().empty());
  EXPECT_TRUE(Body(v)["git_version"].is_null());
  ExpectError(Call("GET", Root("nope") + "/monitor/health"), 404);
  ExpectError(Call("GET", Root("nope") + "/version"), 404);
}

}  // namespace
}  // namespace tandem::testing
