// The region process as an operator meets it: start-up refusals with clear messages, and no
// acknowledged change lost when the region or its PostgreSQL is killed.
#include <gtest/gtest.h>
#include <signal.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "base/net.h"
#include "crypto/secret_box.h"
#include "harness/pg_harness.h"
#include "harness/region_harness.h"
#include "pg/conn.h"

namespace tandem::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

std::unique_ptr<RegionProcess> NewRegion(RegionProcess::Options o = {}) {
  auto r = RegionProcess::Create(std::move(o));
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : nullptr;
}

void Contains(const std::string& text, const std::string& words) {
  EXPECT_NE(text.find(words), std::string::npos) << "expected \"" << words << "\" in:\n" << text;
}

TEST(RegionTest, SigkillOfRegionLosesNoAcknowledgedChange) {
  auto r = NewRegion();
  ASSERT_TRUE(r->Start().ok()) << r->log();
  ASSERT_EQ(r->Call("POST", "/api/v1/deployments", R"({"name": "durable"})").status, 201);
  // A burst of acknowledged writes, then SIGKILL straight after the last acknowledgement.
  for (int i = 0; i < 50; ++i) {
    auto v = r->Call("POST", "/deployments/durable/api/v2/variables",
                     Json({{"key", "k" + std::to_string(i)}, {"value", i}}).dump());
    ASSERT_EQ(v.status, 201) << v.body;
  }
  auto patched = r->Call("PATCH", "/api/v1/deployments/durable",
                         R"({"description": "last", "config": {"worker_slots": 7}})");
  ASSERT_EQ(patched.status, 200) << patched.body;
  std::string id = Json::parse(patched.body)["id"];
  // The region and its PostgreSQL die at the same instant: no clean shutdown, no checkpoint;
  // what was acknowledged must come back from the WAL.
  pid_t pg = r->PostgresPid();
  ASSERT_GT(pg, 0);
  ASSERT_EQ(kill(pg, SIGKILL), 0);
  r->Kill(SIGKILL);
  ASSERT_TRUE(r->Start().ok()) << r->log();
  auto list = Json::parse(r->Call("GET", "/deployments/durable/api/v2/variables?limit=100").body);
  EXPECT_EQ(list["total_entries"], 50);
  Json d = Json::parse(r->Call("GET", "/api/v1/deployments/durable").body);
  EXPECT_EQ(d["id"], id);
  EXPECT_EQ(d["description"], "last");
  EXPECT_EQ(d["config"]["worker_slots"], 7);
}

TEST(RegionTest, SigkillOfPostgresIsRepairedAndLosesNothing) {
  auto r = NewRegion();
  ASSERT_TRUE(r->Start().ok()) << r->log();
  ASSERT_EQ(r->Call("POST", "/api/v1/deployments", R"({"name": "survivor"})").status, 201);
  ASSERT_EQ(r->Call("PUT", "/api/v1/deployments/survivor/env/KEPT",
                    R"({"value": "yes", "is_secret": true})")
                .status,
            200);
  pid_t pg = r->PostgresPid();
  ASSERT_GT(pg, 0);
  ASSERT_EQ(kill(pg, SIGKILL), 0);
  // The supervisor notices within a second and starts a new server; the API comes back.
  HttpReply got;
  for (int i = 0; i < 300; ++i) {
    pid_t now = r->PostgresPid();
    if (now != pg && now > 0) {
      got = r->Call("GET", "/api/v1/deployments/survivor/env/KEPT");
      if (got.status == 200) break;
    }
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_EQ(got.status, 200) << got.body << "\n" << r->log();
  EXPECT_EQ(Json::parse(got.body)["is_secret"], true);
  EXPECT_NE(r->PostgresPid(), pg);
  // The restart is counted once the supervisor has seen the new server answer.
  std::string metrics;
  for (int i = 0; i < 100; ++i) {
    metrics = r->Call("GET", "/metrics").body;
    if (metrics.find("tandem_postgres_up{region=\"test-region\"} 1") != std::string::npos) break;
    std::this_thread::sleep_for(100ms);
  }
  Contains(metrics, "tandem_postgres_restarts_total{region=\"test-region\"} 1");
  Contains(metrics, "tandem_postgres_up{region=\"test-region\"} 1");
  Contains(r->log(), "restarting it");
}

TEST(RegionTest, BadConfigNamesLineAndKey) {
  auto r = NewRegion();
  auto yaml = ReadFile(r->config_path());
  ASSERT_TRUE(WriteFileAtomic(r->config_path(), *yaml + "limits:\n  max_valu_bytes: 10\n").ok());
  CliRun run = RunCli({"region", "--config", r->config_path()});
  EXPECT_EQ(run.exit_code, 2);
  Contains(run.output, "region.yaml:");
  Contains(run.output, "unknown key limits.max_valu_bytes");
  CliRun missing = RunCli({"region", "--config", r->dir() + "/nope.yaml"});
  EXPECT_NE(missing.exit_code, 0);
  Contains(missing.output, "nope.yaml");
}

TEST(RegionTest, UnreachablePostgresIsRetriedWithBackoffThenRefused) {
  auto port = PickFreePort();
  auto r = NewRegion({.external_dsn = "host=127.0.0.1 port=" + std::to_string(*port) +
                                      " dbname=tandem user=tandem connect_timeout=1",
                      .connect_timeout_seconds = 3});
  CliRun run = r->StartExpectingExit(60);
  EXPECT_EQ(run.exit_code, 3) << run.output;
  Contains(run.output, "PostgreSQL unreachable");
  Contains(run.output, "retrying in");
  Contains(run.output, "did not start");
}

TEST(RegionTest, ExternalPostgresWorks) {
  // In URI form, as operators often write it.
  std::string dsn = PgHarness::Get().NewDatabase();
  std::string db = dsn.substr(dsn.find("dbname='") + 8);
  db = db.substr(0, db.find('\''));
  auto pw = ReadFile(PgHarness::Get().dir() + "/pg/pg.password");
  ASSERT_TRUE(pw.ok());
  auto r = NewRegion({.external_dsn = "postgresql://tandem:" + *pw + "@127.0.0.1:" +
                                      std::to_string(PgHarness::Get().port()) + "/" + db});
  ASSERT_TRUE(r->Start().ok()) << r->log();
  EXPECT_EQ(r->Call("POST", "/api/v1/deployments", R"({"name": "ext"})").status, 201);
  EXPECT_EQ(r->Call("GET", "/readyz").status, 200);
}

TEST(RegionTest, HttpPortInUseIsRefused) {
  auto r = NewRegion();
  auto other = NewRegion();
  ASSERT_TRUE(other->Start().ok());
  // Point the first region at the port the second one serves on.
  auto yaml = ReadFile(r->config_path());
  std::string text = *yaml;
  std::string from = "http_port: " + std::to_string(r->http_port());
  text.replace(text.find(from), from.size(), "http_port: " + std::to_string(other->http_port()));
  ASSERT_TRUE(WriteFileAtomic(r->config_path(), text).ok());
  CliRun run = r->StartExpectingExit();
  EXPECT_EQ(run.exit_code, 3);
  Contains(run.output, "already in use");
  // Refused before starting anything: PostgreSQL was never even initialised.
  EXPECT_FALSE(PathExists(r->dir() + "/state/pg/data/PG_VERSION"));
  EXPECT_EQ(run.output.find("PostgreSQL running"), std::string::npos);
}

TEST(RegionTest, UnwritableStateDirectoryIsRefused) {
  auto r = NewRegion();
  auto yaml = ReadFile(r->config_path());
  std::string text = *yaml;
  text.replace(text.find("state_dir: state"), 16, "state_dir: /proc/tandem-state");
  ASSERT_TRUE(WriteFileAtomic(r->config_path(), text).ok());
  CliRun run = r->StartExpectingExit();
  EXPECT_NE(run.exit_code, 0);
  Contains(run.output, "state directory /proc/tandem-state is not usable");
}

TEST(RegionTest, MissingOrWrongSecretKeyIsRefused) {
  auto r = NewRegion();
  ASSERT_TRUE(r->Start().ok()) << r->log();
  r->Stop();
  // Missing key file.
  ASSERT_TRUE(RemoveAll(r->dir() + "/secret.key").ok());
  CliRun missing = r->StartExpectingExit();
  EXPECT_EQ(missing.exit_code, 2);
  Contains(missing.output, "secret key file");
  // A key file others can read.
  ASSERT_TRUE(WriteFileAtomic(r->dir() + "/secret.key", NewSecretKeyBase64() + "\n", 0644).ok());
  CliRun open = r->StartExpectingExit();
  EXPECT_EQ(open.exit_code, 2);
  Contains(open.output, "can be read by users other than its owner (mode 0644)");
  Contains(open.output, "chmod 600");
  // Malformed key.
  ASSERT_TRUE(WriteFileAtomic(r->dir() + "/secret.key", "short\n", 0600).ok());
  CliRun bad = r->StartExpectingExit();
  EXPECT_EQ(bad.exit_code, 2);
  Contains(bad.output, "bad secret key");
  // A valid key, but not the one the database was encrypted with.
  ASSERT_TRUE(WriteFileAtomic(r->dir() + "/secret.key", NewSecretKeyBase64() + "\n", 0600).ok());
  CliRun wrong = r->StartExpectingExit();
  EXPECT_EQ(wrong.exit_code, 2);
  Contains(wrong.output, "does not match");
}

TEST(RegionTest, NewerSchemaIsRefused) {
  auto r = NewRegion({.external_dsn = PgHarness::Get().NewDatabase()});
  ASSERT_TRUE(r->Start().ok()) << r->log();
  r->Stop();
  auto c = pg::Conn::Connect(PgHarness::Get().server().Dsn("postgres"));
  ASSERT_TRUE(c.ok());
  // Find the database the region used and mark its schema as from the future.
  auto yaml = ReadFile(r->config_path());
  std::string db = yaml->substr(yaml->find("dbname='") + 8);
  db = db.substr(0, db.find('\''));
  auto dbc = pg::Conn::Connect(PgHarness::Get().server().Dsn(db));
  ASSERT_TRUE(dbc.ok());
  ASSERT_TRUE((*dbc)->ExecScript("INSERT INTO schema_migrations VALUES (999, 'future', now())")
                  .ok());
  CliRun run = r->StartExpectingExit();
  EXPECT_EQ(run.exit_code, 2);
  Contains(run.output, "schema is at version 999, newer than this tandem knows");
}

}  // namespace
}  // namespace tandem::testing
