// The CLI as a user runs it: a subprocess against a real region, table and JSON output, and
// exit codes for bad input.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "harness/region_harness.h"

namespace tandem::testing {
namespace {

using Json = nlohmann::json;

class CliTest : public SharedRegionTest {
 protected:
  // `tandem --url <region> ARGS...`
  static CliRun Cli(std::vector<std::string> args) {
    args.insert(args.begin(), {"--url", region_->url()});
    return RunCli(args);
  }
  static CliRun CliIn(std::vector<std::string> args, const std::string& in) {
    args.insert(args.begin(), {"--url", region_->url()});
    return RunCli(args, 60, in);
  }
  static Json CliJson(std::vector<std::string> args) {
    args.insert(args.begin(), {"--output", "json"});
    CliRun r = Cli(args);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return Json::parse(r.output, nullptr, false);
  }
};

void Contains(const std::string& text, const std::string& words) {
  EXPECT_NE(text.find(words), std::string::npos) << "expected \"" << words << "\" in:\n" << text;
}

TEST_F(CliTest, DeploymentLifecycle) {
  CliRun c = Cli({"deployment", "create", "cli-dep", "--description", "from the cli",
                  "--worker-slots", "3", "--catchup", "true"});
  ASSERT_EQ(c.exit_code, 0) << c.output;
  Contains(c.output, "namespace");
  Contains(c.output, "cli-dep-");
  Json got = CliJson({"deployment", "get", "cli-dep"});
  EXPECT_EQ(got["config"]["worker_slots"], 3);
  EXPECT_EQ(got["config"]["schedule"]["catchup"], true);
  // Global options may also follow the subcommand.
  CliRun list = RunCli({"deployment", "list", "--url", region_->url()});
  ASSERT_EQ(list.exit_code, 0) << list.output;
  Contains(list.output, "NAME");
  Contains(list.output, "cli-dep");
  Json upd = CliJson({"deployment", "update", "cli-dep", "--name", "cli-dep2",
                      "--metrics-enabled", "true", "--metrics-endpoint", "127.0.0.1:8125",
                      "--metrics-format", "statsd"});
  EXPECT_EQ(upd["id"], got["id"]);
  EXPECT_EQ(upd["namespace"], got["namespace"]);
  EXPECT_EQ(upd["metrics_export"]["format"], "statsd");
  EXPECT_EQ(Cli({"deployment", "delete", "cli-dep2"}).exit_code, 0);
  CliRun gone = Cli({"deployment", "get", "cli-dep2"});
  EXPECT_EQ(gone.exit_code, 4);
  Contains(gone.output, "error: no deployment");
}

TEST_F(CliTest, EnvConnVarPool) {
  ASSERT_EQ(Cli({"deployment", "create", "res"}).exit_code, 0);
  EXPECT_EQ(Cli({"env", "set", "res", "REGION", "eu"}).exit_code, 0);
  EXPECT_EQ(Cli({"env", "set", "res", "TOKEN", "t0p", "--secret"}).exit_code, 0);
  CliRun env = Cli({"env", "list", "res"});
  Contains(env.output, "REGION  eu");
  Contains(env.output, "***");
  EXPECT_EQ(env.output.find("t0p"), std::string::npos);
  // Secrets can come from standard input instead of the command line.
  ASSERT_EQ(CliIn({"env", "set", "res", "FROM_STDIN", "-", "--secret"}, "s3cr3t\n").exit_code, 0);
  ASSERT_EQ(CliIn({"var", "set", "res", "piped", "-"}, "line one\n").exit_code, 0);
  EXPECT_EQ(CliJson({"var", "get", "res", "piped"})["value"], "line one");
  EXPECT_EQ(Cli({"env", "unset", "res", "FROM_STDIN"}).exit_code, 0);
  EXPECT_EQ(Cli({"var", "delete", "res", "piped"}).exit_code, 0);
  EXPECT_EQ(Cli({"env", "unset", "res", "REGION"}).exit_code, 0);
  EXPECT_EQ(CliJson({"env", "list", "res"})["total_entries"], 1);

  CliRun add = Cli({"conn", "add", "res", "db", "--type", "postgres", "--host", "h", "--port",
                    "5432", "--password", "pw123", "--extra", R"({"token": "xyz"})"});
  ASSERT_EQ(add.exit_code, 0) << add.output;
  EXPECT_EQ(add.output.find("pw123"), std::string::npos);
  EXPECT_EQ(add.output.find("xyz"), std::string::npos);
  Json conn = CliJson({"conn", "get", "res", "db"});
  EXPECT_EQ(conn["password"], "***");
  EXPECT_EQ(CliJson({"conn", "list", "res"})["total_entries"], 1);
  EXPECT_EQ(Cli({"conn", "delete", "res", "db"}).exit_code, 0);

  EXPECT_EQ(Cli({"var", "set", "res", "threshold", "10", "--description", "rows"}).exit_code, 0);
  EXPECT_EQ(Cli({"var", "set", "res", "threshold", "20"}).exit_code, 0);  // updates
  Json var = CliJson({"var", "get", "res", "threshold"});
  EXPECT_EQ(var["value"], "20");
  EXPECT_EQ(var["description"], "rows");
  EXPECT_EQ(Cli({"var", "set", "res", "hidden", "x", "--secret"}).exit_code, 0);
  EXPECT_EQ(CliJson({"var", "get", "res", "hidden"})["value"], "***");
  EXPECT_EQ(CliJson({"var", "list", "res"})["total_entries"], 2);
  EXPECT_EQ(Cli({"var", "delete", "res", "hidden"}).exit_code, 0);

  EXPECT_EQ(Cli({"pool", "set", "res", "gpu", "2"}).exit_code, 0);
  EXPECT_EQ(Cli({"pool", "set", "res", "gpu", "4", "--description", "GPUs"}).exit_code, 0);
  CliRun pools = Cli({"pool", "list", "res"});
  Contains(pools.output, "default_pool");
  Contains(pools.output, "gpu           4");
  EXPECT_EQ(Cli({"pool", "delete", "res", "gpu"}).exit_code, 0);
}

TEST_F(CliTest, BadInputExitsNonZeroWithAMessage) {
  ASSERT_EQ(Cli({"deployment", "create", "dup"}).exit_code, 0);
  CliRun dup = Cli({"deployment", "create", "dup"});
  EXPECT_EQ(dup.exit_code, 5);
  Contains(dup.output, "already exists");
  CliRun bad = Cli({"deployment", "create", "Bad Name"});
  EXPECT_EQ(bad.exit_code, 2);
  Contains(bad.output, "deployment name");
  CliRun unknown = Cli({"env", "list", "ghost"});
  EXPECT_EQ(unknown.exit_code, 4);
  CliRun def = Cli({"pool", "delete", "dup", "default_pool"});
  EXPECT_EQ(def.exit_code, 2);
  Contains(def.output, "can't be deleted");
  CliRun json = Cli({"var", "set", "dup", "k", "{oops", "--json"});
  EXPECT_EQ(json.exit_code, 2);
  Contains(json.output, "not JSON");
  CliRun usage = Cli({"deployment", "frobnicate"});
  EXPECT_EQ(usage.exit_code, 2);
  CliRun nothing = RunCli({"--state-dir", region_->dir() + "/no-platform", "deployment", "list"});
  EXPECT_EQ(nothing.exit_code, 3);
  Contains(nothing.output, "no running platform found");
  // --dns must name a DNS server's IPv4 address and port.
  CliRun dns = RunCli({"--url", "http://api.tandem.test:8080", "--dns", "dns.example:53",
                       "deployment", "list"});
  EXPECT_EQ(dns.exit_code, 2) << dns.output;
  Contains(dns.output, "expected ADDRESS:PORT with an IPv4 address");
  CliRun worker = RunCli({"worker", "--api", "http://x-000000-exec.tandem.test:8080", "--dns",
                          "127.0.0.1:0"},
                         10, "");
  EXPECT_EQ(worker.exit_code, 2) << worker.output;
  Contains(worker.output, "the port must be 1-65535");
}

}  // namespace
}  // namespace tandem::testing
