// `tandem deploy`, `dags`, `runs` and `tasks` as a user runs them: the real binary against a
// real region. DAGs arrive paused and stay so while runs are looked at, so nothing here waits
// for a worker to run a task.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "base/fs.h"
#include "harness/region_harness.h"

namespace tandem::testing {
namespace {

using Json = nlohmann::json;

// A manual-only DAG of two tasks.
constexpr const char* kEtl =
    "etl:\n"
    "  tasks:\n"
    "    extract: {operator: bash, bash_command: \"echo extracted\"}\n"
    "    load: {operator: empty, dependencies: [extract]}\n";
// The unknown operator is on line 4.
constexpr const char* kBroken =
    "broken_dag:\n"
    "  tasks:\n"
    "    a:\n"
    "      operator: nope\n";

void Contains(const std::string& text, const std::string& words) {
  EXPECT_NE(text.find(words), std::string::npos) << "expected \"" << words << "\" in:\n" << text;
}

class PipelinesCliTest : public SharedRegionTest {
 protected:
  // `tandem --url <region> ARGS...`
  static CliRun Cli(std::vector<std::string> args) {
    args.insert(args.begin(), {"--url", region_->url()});
    return RunCli(args);
  }
  static Json CliJson(std::vector<std::string> args) {
    args.insert(args.begin(), {"--output", "json"});
    CliRun r = Cli(args);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return Json::parse(r.output, nullptr, false);
  }
  // A new deployment running kEtl.
  static void Deployed(const TempDir& tmp, const std::string& name) {
    ASSERT_EQ(Cli({"deployment", "create", name}).exit_code, 0);
    CliRun d = Cli({"deploy", name, BundleDir(tmp, name, {{"etl.yaml", kEtl}})});
    ASSERT_EQ(d.exit_code, 0) << d.output;
  }
};

TEST_F(PipelinesCliTest, DeployRecordsDagsAndImportErrors) {
  auto tmp = TempDir::Create("pipelines-cli");
  ASSERT_TRUE(tmp.ok());
  ASSERT_EQ(Cli({"deployment", "create", "dep"}).exit_code, 0);
  std::string dir = BundleDir(*tmp, "bundle",
                              {{"etl.yaml", kEtl},
                               {"more/broken.yaml", kBroken},
                               {"more/query.sql", "select 1;\n"},
                               {".git/HEAD", "\xff not text, but hidden\n"}});
  CliRun d = Cli({"deploy", "dep", dir});
  // Import errors are recorded, not a failure.
  ASSERT_EQ(d.exit_code, 0) << d.output;
  Contains(d.output, "bundle_version: ");
  Contains(d.output, "dags: etl");
  Contains(d.output, "import errors");
  Contains(d.output, "more/broken.yaml:4: ");

  CliRun dags = Cli({"dags", "list", "dep"});
  ASSERT_EQ(dags.exit_code, 0) << dags.output;
  Contains(dags.output, "DAG ID  PAUSED  SCHEDULE");
  Contains(dags.output, "etl     true    manual");
  Json list = CliJson({"dags", "list", "dep"});
  ASSERT_EQ(list["total_entries"], 1) << list;

  CliRun errors = Cli({"dags", "errors", "dep"});
  ASSERT_EQ(errors.exit_code, 0) << errors.output;
  Contains(errors.output, "FILENAME");
  Contains(errors.output, "more/broken.yaml  4     ");

  // The same files again: the same version.
  CliRun again = Cli({"deploy", "dep", dir});
  ASSERT_EQ(again.exit_code, 0) << again.output;
  Contains(again.output, "(unchanged");

  CliRun missing = Cli({"deploy", "dep", tmp->path() + "/nowhere"});
  EXPECT_EQ(missing.exit_code, 2);
  Contains(missing.output, "cannot read the directory");
  std::string empty = tmp->path() + "/empty";
  ASSERT_TRUE(MakeDirs(empty).ok());
  CliRun none = Cli({"deploy", "dep", empty});
  EXPECT_EQ(none.exit_code, 2);
  Contains(none.output, "no .yaml or .yml file");
  std::string binary = BundleDir(*tmp, "binary", {{"etl.yaml", kEtl}, {"blob.yaml", "\xc3\x28"}});
  CliRun bin = Cli({"deploy", "dep", binary});
  EXPECT_EQ(bin.exit_code, 2);
  Contains(bin.output, "blob.yaml is not UTF-8 text");

  // A link may lead within the directory, not out of it.
  std::string linked = BundleDir(*tmp, "linked", {{"etl.yaml", kEtl}});
  std::filesystem::create_symlink("etl.yaml", linked + "/copy.yaml");
  EXPECT_EQ(Cli({"deploy", "dep", linked}).exit_code, 0);
  std::filesystem::create_symlink(dir + "/more/query.sql", linked + "/query.sql");
  CliRun out = Cli({"deploy", "dep", linked});
  EXPECT_EQ(out.exit_code, 2);
  Contains(out.output, "query.sql is a symbolic link to");

  CliRun ghost = Cli({"deploy", "ghost", dir});
  EXPECT_EQ(ghost.exit_code, 4);
  Contains(ghost.output, "no deployment");
  EXPECT_EQ(Cli({"dags", "list", "ghost"}).exit_code, 4);
}

TEST_F(PipelinesCliTest, PauseTriggerAndLookAtRuns) {
  auto tmp = TempDir::Create("pipelines-cli");
  ASSERT_TRUE(tmp.ok());
  Deployed(*tmp, "runs");

  CliRun unpause = Cli({"dags", "unpause", "runs", "etl"});
  ASSERT_EQ(unpause.exit_code, 0) << unpause.output;
  Contains(unpause.output, "etl     false");
  EXPECT_EQ(CliJson({"dags", "list", "runs"})["dags"][0]["is_paused"], false);
  CliRun pause = Cli({"dags", "pause", "runs", "etl"});
  ASSERT_EQ(pause.exit_code, 0) << pause.output;
  Contains(pause.output, "etl     true");
  EXPECT_EQ(CliJson({"dags", "list", "runs"})["dags"][0]["is_paused"], true);

  CliRun bad_conf = Cli({"dags", "trigger", "runs", "etl", "--conf", "[1, 2]"});
  EXPECT_EQ(bad_conf.exit_code, 2);
  Contains(bad_conf.output, "--conf must be a JSON object");
  EXPECT_EQ(Cli({"dags", "trigger", "runs", "etl", "--conf", "{oops"}).exit_code, 2);
  CliRun no_dag = Cli({"dags", "trigger", "runs", "nope"});
  EXPECT_EQ(no_dag.exit_code, 4) << no_dag.output;
  EXPECT_EQ(Cli({"dags", "trigger", "ghost", "etl"}).exit_code, 4);
  EXPECT_EQ(Cli({"dags", "pause", "runs", "nope"}).exit_code, 4);

  // A run id with ':' and '+' travels in paths escaped.
  const std::string run_id = "manual__2025-03-04T00:00:00+00:00";
  CliRun t = Cli({"dags", "trigger", "runs", "etl", "--run-id", run_id, "--conf", R"({"day": 4})",
                  "--logical-date", "2025-03-04T00:00:00Z"});
  ASSERT_EQ(t.exit_code, 0) << t.output;
  Contains(t.output, run_id);
  Contains(t.output, "queued");
  Json manual = CliJson({"dags", "trigger", "runs", "etl"});
  ASSERT_TRUE(manual["dag_run_id"].is_string()) << manual;
  EXPECT_TRUE(manual["logical_date"].is_null()) << manual;
  EXPECT_EQ(Cli({"dags", "trigger", "runs", "etl", "--run-id", run_id}).exit_code, 5);

  CliRun runs = Cli({"runs", "list", "runs"});
  ASSERT_EQ(runs.exit_code, 0) << runs.output;
  Contains(runs.output, "DAG ID  RUN ID");
  Contains(runs.output, run_id);
  Json all = CliJson({"runs", "list", "runs", "etl", "--state", "queued"});
  EXPECT_EQ(all["total_entries"], 2) << all;
  EXPECT_EQ(CliJson({"runs", "list", "runs", "etl", "--state", "success"})["total_entries"], 0);
  EXPECT_EQ(Cli({"runs", "list", "runs", "etl", "--state", "sleeping"}).exit_code, 2);

  CliRun get = Cli({"runs", "get", "runs", "etl", run_id});
  ASSERT_EQ(get.exit_code, 0) << get.output;
  Contains(get.output, "run_id        " + run_id);
  Contains(get.output, R"({"day":4})");
  Contains(get.output, "TASK ID");
  Contains(get.output, "extract");
  Contains(get.output, "load");
  Json got = CliJson({"runs", "get", "runs", "etl", run_id});
  EXPECT_EQ(got["dag_run"]["dag_run_id"], run_id);
  EXPECT_EQ(got["task_instances"].size(), 2u) << got;
  EXPECT_EQ(Cli({"runs", "get", "runs", "etl", "nope"}).exit_code, 4);

  CliRun tasks = Cli({"tasks", "list", "runs", "etl", run_id});
  ASSERT_EQ(tasks.exit_code, 0) << tasks.output;
  Contains(tasks.output, "TASK ID  STATE  TRY");
  Contains(tasks.output, "extract");
  // The DAG is paused: no task has started, so there is no log yet.
  CliRun logs = Cli({"tasks", "logs", "runs", "etl", run_id, "extract"});
  EXPECT_EQ(logs.exit_code, 4) << logs.output;
  Contains(logs.output, "has not started yet");
  EXPECT_EQ(Cli({"tasks", "logs", "runs", "etl", run_id, "nope"}).exit_code, 4);

  // A dry run lists what would be cleared and changes nothing.
  CliRun dry = Cli({"runs", "clear", "runs", "etl", run_id, "--dry-run"});
  ASSERT_EQ(dry.exit_code, 0) << dry.output;
  Contains(dry.output, "dry run");
  Json cleared = CliJson({"runs", "clear", "runs", "etl", run_id});
  EXPECT_EQ(cleared["dag_run_id"], run_id) << cleared;
  EXPECT_EQ(cleared["state"], "queued") << cleared;
}

}  // namespace
}  // namespace tandem::testing
