// Pipelines end to end: a bundle deployed, runs triggered and scheduled, tasks run by real
// workers over the Execution API, logs and XComs read back through Airflow's API — and the
// faults: a worker killed mid-task, the region killed mid-run, tokens that are not valid.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/process.h"
#include "crypto/secret_box.h"
#include "crypto/token.h"
#include "harness/region_harness.h"
#include "pg/conn.h"

namespace tandem::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

Json Parse(const HttpReply& r) { return Json::parse(r.body, nullptr, false); }

// A task instance's state; "" for none (JSON null) or no answer.
std::string StateOf(const Json& ti) {
  return ti.is_object() && ti.contains("state") && ti["state"].is_string()
             ? ti["state"].get<std::string>()
             : "";
}

// Polls `ok` every 100 ms for up to `timeout`; true when it held.
bool WaitFor(const std::function<bool()>& ok, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (ok()) return true;
    std::this_thread::sleep_for(100ms);
  }
  return ok();
}

std::string Esc(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[4];
      snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

class PipelineRunTest : public ::testing::Test {
 protected:
  // A region with `local_workers` workers of its own (0: the test starts them).
  // `workers_yaml`: more keys of the workers section.
  void StartRegion(int local_workers, const std::string& workers_yaml = "") {
    RegionProcess::Options o;
    o.extra_yaml = "workers:\n  local: " + std::to_string(local_workers) +
                   "\n  slots: 8\n  heartbeat_ms: 500\n" + workers_yaml;
    auto r = RegionProcess::Create(o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    region_ = std::move(r).value();
    Status s = region_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString() << "\n" << Logs();
  }

  HttpReply Call(const std::string& m, const std::string& p, const Json& body = nullptr) {
    return region_->Call(m, p, body.is_null() ? "" : body.dump());
  }
  std::string Root() const { return "/deployments/" + dep_ + "/api/v2"; }
  std::string RunPath(const std::string& dag, const std::string& run) const {
    return Root() + "/dags/" + dag + "/dagRuns/" + Esc(run);
  }

  void CreateDeployment(const std::string& name) {
    dep_ = name;
    auto r = Call("POST", "/api/v1/deployments", {{"name", name}});
    ASSERT_EQ(r.status, 201) << r.body;
  }
  Json Deploy(const std::map<std::string, std::string>& files) {
    auto r = Call("POST", "/api/v1/deployments/" + dep_ + "/bundle", {{"files", files}});
    EXPECT_EQ(r.status, 200) << r.body;
    return Parse(r);
  }
  void Unpause(const std::string& dag) {
    auto r = Call("PATCH", Root() + "/dags/" + dag, {{"is_paused", false}});
    ASSERT_EQ(r.status, 200) << r.body;
  }
  std::string Trigger(const std::string& dag, const Json& conf = Json::object()) {
    auto r = Call("POST", Root() + "/dags/" + dag + "/dagRuns",
                  {{"logical_date", nullptr}, {"conf", conf}});
    EXPECT_EQ(r.status, 200) << r.body;
    return Parse(r).value("dag_run_id", "");
  }
  std::string RunState(const std::string& dag, const std::string& run) {
    auto r = Call("GET", RunPath(dag, run));
    return r.status == 200 ? Parse(r).value("state", "") : "";
  }
  // Waits for the run to finish; returns its final state ("" on timeout).
  std::string WaitRun(const std::string& dag, const std::string& run,
                      std::chrono::milliseconds timeout = 60s) {
    std::string state;
    WaitFor(
        [&] {
          state = RunState(dag, run);
          return state == "success" || state == "failed";
        },
        timeout);
    return state == "success" || state == "failed" ? state : "";
  }
  Json Ti(const std::string& dag, const std::string& run, const std::string& task) {
    return Parse(Call("GET", RunPath(dag, run) + "/taskInstances/" + task));
  }
  std::string Log(const std::string& dag, const std::string& run, const std::string& task,
                  int try_number) {
    auto r = Call("GET", RunPath(dag, run) + "/taskInstances/" + task + "/logs/" +
                             std::to_string(try_number) + "?full_content=true");
    if (r.status != 200) return "";  // no such try (yet)
    std::string text;
    const Json body = Parse(r);
    for (const Json& line : body["content"]) {
      text += (line.is_string() ? line.get<std::string>() : line.value("event", "")) + "\n";
    }
    return text;
  }
  int Count(const std::string& sql) {
    auto c = pg::Conn::Connect(region_->Dsn());
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    auto r = (*c)->Exec(sql);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? static_cast<int>(r->Int(0, 0)) : -1;
  }
  // A worker credential of the platform's pool, made once per test.
  std::string Credential() {
    if (credential_.empty()) credential_ = MakeWorkerCredential(region_->url());
    EXPECT_FALSE(credential_.empty()) << "the region made no worker credential";
    return credential_;
  }
  // An Execution API call as a worker makes it, with `credential` as its bearer.
  HttpReply Exec(const std::string& path, const Json& body, const std::string& credential) {
    httplib::Client cli(region_->url());
    httplib::Headers h;
    if (!credential.empty()) h.emplace("Authorization", "Bearer " + credential);
    auto r = cli.Post(path, h, body.dump(), "application/json");
    return r ? HttpReply{r->status, r->body} : HttpReply{};
  }
  HttpReply Exec(const std::string& path, const Json& body) {
    return Exec(path, body, Credential());
  }
  // The fixture owns the workers a test starts, and stops them even when the test fails.
  Child* StartWorker(const std::vector<std::string>& extra_args = {}) {
    std::vector<std::string> argv = {TandemBin(), "worker", "--api",      region_->url(),
                                     "--slots",   "4",      "--grace-ms", "0"};
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    auto w = Child::Spawn(
        {.argv = argv,
         .env_extra = {{"TANDEM_WORKER_TOKEN", Credential()}, {"TMPDIR", region_->tmp_dir()}},
         .output_path = region_->dir() + "/test-worker.log",
         .death_signal = SIGKILL});
    EXPECT_TRUE(w.ok()) << w.status().ToString();
    if (!w.ok()) return nullptr;
    workers_.push_back(std::move(w).value());
    return workers_.back().get();
  }
  void TearDown() override {
    for (ChildPtr& w : workers_) w->Stop(SIGKILL, std::chrono::seconds(5));
  }

  // The region's own log and its local workers' logs, for failure messages.
  std::string Logs() const {
    std::string out = region_->log();
    for (int i = 0; i < 4; ++i) {
      auto w = ReadFile(region_->dir() + "/state/worker-" + std::to_string(i) + ".log");
      if (w.ok()) out += "\n--- worker " + std::to_string(i) + "\n" + *w;
    }
    auto t = ReadFile(region_->dir() + "/test-worker.log");
    if (t.ok()) out += "\n--- test worker\n" + *t;
    return out;
  }

  std::unique_ptr<RegionProcess> region_;
  std::string dep_;
  std::vector<ChildPtr> workers_;
  std::string credential_;  // Credential()'s
};

const char* kEtl = R"(
etl:
  default_args: {owner: data}
  params: {greeting: hello}
  tasks:
    extract:
      operator: bash
      bash_command: "echo extracting {{ params.greeting }} for {{ dag.dag_id }} as {{ var.value.who }}; echo 42"
    transform:
      operator: bash
      dependencies: [extract]
      bash_command: "echo got {{ ti.xcom_pull(task_ids='extract') }} from $SOURCE_HOST; echo $AIRFLOW_VAR_WHO >&2; echo niceness $(nice); echo transformed"
      env: {SOURCE_HOST: "{{ conn.source.host }}"}
    load:
      operator: empty
      dependencies: [transform]
)";

TEST_F(PipelineRunTest, AnEtlRunSucceedsWithTemplatesXComsAndLogs) {
  StartRegion(1);
  CreateDeployment("etl");
  ASSERT_EQ(Call("POST", Root() + "/variables", {{"key", "who"}, {"value", "ada"}}).status, 201);
  ASSERT_EQ(Call("POST", Root() + "/connections",
                 {{"connection_id", "source"}, {"conn_type", "postgres"}, {"host", "db.example"}})
                .status,
            201);
  Json d = Deploy({{"etl.yaml", kEtl}});
  EXPECT_TRUE(d["import_errors"].empty()) << d.dump();
  Unpause("etl");
  std::string run = Trigger("etl", {{"greeting", "hi"}});
  ASSERT_FALSE(run.empty());
  ASSERT_EQ(WaitRun("etl", run), "success") << Logs();

  for (const char* task : {"extract", "transform", "load"}) {
    EXPECT_EQ(Ti("etl", run, task)["state"], "success") << task;
  }
  // conf overrides params; the variable and connection are rendered.
  std::string extract = Log("etl", run, "extract", 1);
  EXPECT_NE(extract.find("extracting hi for etl as ada"), std::string::npos) << extract << Logs();
  // The last line of stdout is the return value, and the next task pulls it.
  auto x = Call("GET", RunPath("etl", run) + "/taskInstances/extract/xcomEntries/return_value");
  ASSERT_EQ(x.status, 200) << x.body;
  EXPECT_EQ(Parse(x)["value"], "42");
  std::string transform = Log("etl", run, "transform", 1);
  EXPECT_NE(transform.find("got 42 from db.example"), std::string::npos) << transform;
  EXPECT_NE(transform.find("ada"), std::string::npos)
      << "AIRFLOW_VAR_WHO in the env: " << transform;
  // Tasks run at workers.task_nice (10 by default), below the worker and the region.
  EXPECT_NE(transform.find("niceness 10\n"), std::string::npos) << transform;
  // The run records the bundle version it ran.
  Json r = Parse(Call("GET", RunPath("etl", run)));
  EXPECT_EQ(r["bundle_version"], d["bundle_version"]);

  // Deleting the run deletes its task logs too.
  auto logs_of_run = [&] {
    int n = 0;
    for (const auto& e :
         std::filesystem::recursive_directory_iterator(region_->dir() + "/state/logs")) {
      n +=
          e.is_regular_file() && e.path().string().find("run_id=" + run + "/") != std::string::npos;
    }
    return n;
  };
  EXPECT_EQ(logs_of_run(), 2);  // extract and transform; load is an EmptyOperator
  EXPECT_EQ(Call("DELETE", RunPath("etl", run)).status, 204);
  EXPECT_EQ(logs_of_run(), 0);
}

TEST_F(PipelineRunTest, RetriesThenFailsAndTriggerRulesDecideDownstream) {
  StartRegion(1);
  CreateDeployment("retry");
  Deploy({{"r.yaml", R"(
flaky:
  default_args: {retries: 1, retry_delay: 1s}
  tasks:
    boom: {operator: bash, bash_command: "echo try $AIRFLOW_CTX_TRY_NUMBER; exit 3"}
    skipper: {operator: bash, bash_command: "exit 99"}
    after_boom: {operator: bash, bash_command: "echo never", dependencies: [boom]}
    after_skip: {operator: bash, bash_command: "echo never", dependencies: [skipper]}
    cleanup: {operator: bash, bash_command: "echo cleaning", dependencies: [boom, skipper], trigger_rule: all_done}
)"}});
  Unpause("flaky");
  std::string run = Trigger("flaky");
  ASSERT_EQ(WaitRun("flaky", run), "failed") << Logs();
  Json boom = Ti("flaky", run, "boom");
  EXPECT_EQ(boom["state"], "failed");
  EXPECT_EQ(boom["try_number"], 2);
  auto tries = Parse(Call("GET", RunPath("flaky", run) + "/taskInstances/boom/tries"));
  ASSERT_EQ(tries["task_instances"].size(), 2u) << tries.dump();
  EXPECT_EQ(tries["task_instances"][0]["state"], "failed");
  EXPECT_NE(Log("flaky", run, "boom", 1).find("try 1"), std::string::npos);
  EXPECT_NE(Log("flaky", run, "boom", 2).find("try 2"), std::string::npos);
  EXPECT_EQ(Ti("flaky", run, "skipper")["state"], "skipped");
  EXPECT_EQ(Ti("flaky", run, "after_boom")["state"], "upstream_failed");
  EXPECT_EQ(Ti("flaky", run, "after_skip")["state"], "skipped");
  EXPECT_EQ(Ti("flaky", run, "cleanup")["state"], "success");

  // Clearing the failed tasks runs them again (a new try each).
  auto clear =
      Call("POST", RunPath("flaky", run) + "/clear", {{"dry_run", false}, {"only_failed", true}});
  ASSERT_EQ(clear.status, 200) << clear.body;
  ASSERT_EQ(WaitRun("flaky", run), "failed");
  EXPECT_EQ(Ti("flaky", run, "boom")["try_number"], 4);
}

TEST_F(PipelineRunTest, AnExecutionTimeoutKillsTheTaskAndFailsTheTry) {
  StartRegion(1);
  CreateDeployment("timeout");
  Deploy({{"t.yaml", R"(
slow:
  tasks:
    forever: {operator: bash, bash_command: 'echo started; sleep 60', execution_timeout: 1s}
)"}});
  Unpause("slow");
  auto start = std::chrono::steady_clock::now();
  std::string run = Trigger("slow");
  ASSERT_EQ(WaitRun("slow", run, 30s), "failed") << Logs();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 20s);
  EXPECT_EQ(StateOf(Ti("slow", run, "forever")), "failed");
  std::string log = Log("slow", run, "forever", 1);
  EXPECT_NE(log.find("started"), std::string::npos) << log;
  EXPECT_NE(log.find("timed out"), std::string::npos) << log;
}

// tandem-task-exec refuses to start a task for a worker that is already gone: --parent names
// the worker, and a program whose parent is someone else (the worker died while it started, and
// it was handed to the reaper) would never get the signal that kills its task.
TEST(TaskExecTest, RefusesATaskWhoseWorkerIsAlreadyGone) {
  const std::string bin = TandemBin();
  const std::string shim = bin.substr(0, bin.rfind('/') + 1) + "tandem-task-exec";
  auto run = [&](const std::vector<std::string>& args) {
    SpawnOptions so;
    so.argv = {shim};
    so.argv.insert(so.argv.end(), args.begin(), args.end());
    auto r = RunCommand(so, 20s);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : RunOutput{};
  };
  const auto start = std::chrono::steady_clock::now();
  RunOutput gone = run({"--parent", "1", "--", "sleep", "30"});
  EXPECT_TRUE(gone.exit.exited && gone.exit.code == 127) << gone.exit.Describe();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s) << "the task ran";
  // Its real parent: it runs, at the niceness asked for.
  RunOutput ok = run({"--nice", "7", "--parent", std::to_string(getpid()), "--", "nice"});
  EXPECT_TRUE(ok.exit.exited && ok.exit.code == 0) << ok.exit.Describe() << ok.output;
  EXPECT_EQ(ok.output, "7\n");
  for (const std::vector<std::string>& bad :
       {std::vector<std::string>{"--nice", "20", "--", "true"},
        std::vector<std::string>{"--parent", "x", "--", "true"},
        std::vector<std::string>{"--what", "1", "--", "true"}}) {
    RunOutput r = run(bad);
    EXPECT_TRUE(r.exit.exited && r.exit.code == 127) << bad[0] << ": " << r.exit.Describe();
    EXPECT_NE(r.output.find("bad option"), std::string::npos) << r.output;
  }
}

TEST_F(PipelineRunTest, AWorkerKilledMidTaskIsDetectedAndTheTaskRetried) {
  StartRegion(0);
  CreateDeployment("zombie");
  Deploy({{"z.yaml", R"(
long:
  default_args: {retries: 1, retry_delay: 0}
  tasks:
    sleepy:
      operator: bash
      bash_command: 'if [ "$AIRFLOW_CTX_TRY_NUMBER" = 1 ]; then echo "dir=$PWD"; sleep 60 & echo child $!; echo pid $$; wait; fi; echo finished'
)"}});
  Unpause("long");
  // Its tasks' directories in a directory of its own, which the next worker empties.
  const std::string task_dir = region_->dir() + "/worker-tasks";
  ASSERT_TRUE(MakeDirs(task_dir + "/task-older").ok());
  ASSERT_TRUE(WriteFileAtomic(task_dir + "/task-older/left", "x").ok());
  Child* worker = StartWorker({"--task-dir", task_dir});
  ASSERT_NE(worker, nullptr);
  std::string run = Trigger("long");
  ASSERT_TRUE(WaitFor(
      [&] { return Log("long", run, "sleepy", 1).find("pid ") != std::string::npos; }, 30s));
  std::string log = Log("long", run, "sleepy", 1);
  pid_t task_pid = std::stoi(log.substr(log.find("pid ") + 4));
  pid_t child_pid = std::stoi(log.substr(log.find("child ") + 6));
  const size_t d = log.find("dir=") + 4;
  const std::string dir = log.substr(d, log.find('\n', d) - d);
  EXPECT_EQ(dir.rfind(task_dir + "/task-", 0), 0U) << log;
  EXPECT_FALSE(PathExists(task_dir + "/task-older")) << "the worker did not empty its directory";
  ASSERT_EQ(StateOf(Ti("long", run, "sleepy")), "running");

  worker->Signal(SIGKILL);
  worker->Wait(5s);
  // The task and what it started die with their worker, and the region notices within three
  // heartbeats (0.5 s each).
  EXPECT_TRUE(WaitFor([&] { return kill(task_pid, 0) != 0; }, 5s)) << "task outlived its worker";
  EXPECT_TRUE(WaitFor([&] { return kill(child_pid, 0) != 0; }, 5s))
      << "a process the task started outlived the worker";
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(WaitFor([&] { return StateOf(Ti("long", run, "sleepy")) != "running"; }, 10s));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_EQ(Count("SELECT count(*) FROM task_instances WHERE state = 'running'"), 0);

  EXPECT_TRUE(PathExists(dir)) << "a SIGKILLed worker cannot remove its task's directory";
  Child* second = StartWorker({"--task-dir", task_dir});
  ASSERT_TRUE(WaitFor([&] { return !PathExists(dir); }, 10s)) << "the next worker left it";
  ASSERT_EQ(WaitRun("long", run), "success")
      << Logs() << Parse(Call("GET", RunPath("long", run) + "/taskInstances/sleepy/tries")).dump()
      << Log("long", run, "sleepy", 2);
  EXPECT_EQ(Ti("long", run, "sleepy")["try_number"], 2);
  EXPECT_NE(Log("long", run, "sleepy", 2).find("finished"), std::string::npos);
  second->Stop(SIGTERM, 5s);
  // What it moved aside it removed too, at the latest when it stopped.
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(region_->dir(), ec)) {
    EXPECT_FALSE(entry.path().filename().string().starts_with("worker-tasks"))
        << entry.path() << " is left";
  }
}

TEST_F(PipelineRunTest, TheRegionKilledMidRunRestartsWithoutDuplicatesOrStuckTasks) {
  StartRegion(1);
  CreateDeployment("crash");
  // Hourly with catchup from 3 hours ago: the scheduler creates exactly three runs.
  auto c = pg::Conn::Connect(region_->Dsn());
  ASSERT_TRUE(c.ok());
  auto t = (*c)->Exec(
      "SELECT to_char(date_trunc('hour', now()) - interval '3 hours', "
      "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')");
  ASSERT_TRUE(t.ok());
  std::string start = t->Text(0, 0);
  Deploy({{"h.yaml", "hourly:\n  schedule: '@hourly'\n  start_date: '" + start +
                         "'\n  catchup: true\n  max_active_runs: 3\n"
                         "  default_args: {retries: 2, retry_delay: 0}\n  tasks:\n"
                         "    work: {operator: bash, bash_command: 'sleep 3; echo ok'}\n"}});
  Unpause("hourly");
  ASSERT_TRUE(WaitFor(
      [&] { return Count("SELECT count(*) FROM task_instances WHERE state = 'running'") >= 1; },
      30s));
  region_->Kill(SIGKILL);
  Status s = region_->Start();
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_TRUE(WaitFor(
      [&] { return Count("SELECT count(*) FROM dag_runs WHERE state = 'success'") == 3; }, 90s))
      << Logs();
  EXPECT_EQ(Count("SELECT count(*) FROM dag_runs"), 3);
  EXPECT_EQ(Count("SELECT count(DISTINCT logical_date) FROM dag_runs"), 3);
  EXPECT_EQ(Count("SELECT count(*) FROM task_instances WHERE state <> 'success'"), 0);
}

TEST_F(PipelineRunTest, ForgedOrForeignTokensChangeNothing) {
  StartRegion(0);
  CreateDeployment("tokens");
  Deploy({{"t.yaml", "t:\n  tasks:\n    a: {operator: bash, bash_command: 'sleep 30'}\n"}});
  Unpause("t");
  std::string run = Trigger("t");
  // Without the worker credential, or with a wrong one, nothing is handed out.
  Json probe = {{"worker_id", "00000000-0000-4000-8000-000000000009"},
                {"hostname", "x"},
                {"slots", 1},
                {"capacity", 1}};
  EXPECT_EQ(Exec("/execution/v1/claim", probe, "").status, 401);
  EXPECT_EQ(Exec("/execution/v1/claim", probe, Credential() + "x").status, 401);
  EXPECT_EQ(Exec("/execution/v1/heartbeat",
                 {{"worker_id", "00000000-0000-4000-8000-000000000009"},
                  {"hostname", "x"},
                  {"capacity", 1},
                  {"tokens", Json::array()}},
                 "nope")
                .status,
            401);
  EXPECT_NE(Ti("t", run, "a")["state"], "running");
  // A worker without a credential refuses to start.
  CliRun no_cred = RunCli({"worker", "--api", region_->url()});
  EXPECT_EQ(no_cred.exit_code, 2) << no_cred.output;
  EXPECT_NE(no_cred.output.find("worker credential"), std::string::npos) << no_cred.output;
  // Nor does one asked for a niceness outside 0..19.
  const std::string token_file = region_->dir() + "/worker.token";
  ASSERT_TRUE(WriteFileAtomic(token_file, Credential() + "\n", 0600).ok());
  for (const char* nice : {"20", "-1"}) {
    CliRun bad_nice = RunCli(
        {"worker", "--api", region_->url(), "--token-file", token_file, "--task-nice", nice});
    EXPECT_EQ(bad_nice.exit_code, 2) << bad_nice.output;
    EXPECT_NE(bad_nice.output.find("--task-nice must be between 0 and 19"), std::string::npos)
        << bad_nice.output;
  }
  // A worker with a wrong credential stops at once, saying why, rather than retrying forever.
  auto wrong = Child::Spawn({.argv = {TandemBin(), "worker", "--api", region_->url()},
                             .env_extra = {{"TANDEM_WORKER_TOKEN", "wrong"}},
                             .output_path = region_->dir() + "/wrong-worker.log",
                             .death_signal = SIGKILL});
  ASSERT_TRUE(wrong.ok());
  std::optional<ExitInfo> gone = (*wrong)->Wait(std::chrono::seconds(20));
  ASSERT_TRUE(gone.has_value()) << "a worker with a wrong credential kept running";
  EXPECT_TRUE(gone->exited && gone->code != 0) << gone->Describe();
  EXPECT_NE(ReadFile(region_->dir() + "/wrong-worker.log")->find("worker credential is not valid"),
            std::string::npos);
  // Claim as a worker would, by hand.
  Json claim = {{"worker_id", "00000000-0000-4000-8000-000000000001"},
                {"hostname", "test"},
                {"slots", 1},
                {"capacity", 1},
                {"wait_ms", 10000}};
  // An empty answer means "work may be there now: ask again", as a worker does.
  Json tasks = Json::array();
  ASSERT_TRUE(WaitFor(
      [&] {
        auto r = Exec("/execution/v1/claim", claim);
        EXPECT_EQ(r.status, 200) << r.body;
        tasks = Parse(r).value("tasks", Json::array());
        return !tasks.empty();
      },
      30s));
  ASSERT_EQ(tasks.size(), 1u) << tasks.dump();
  ASSERT_TRUE(tasks[0].contains("token")) << tasks.dump();
  std::string token = tasks[0]["token"];
  EXPECT_EQ(tasks[0]["argv"], Json::array({"bash", "-c", "sleep 30"}));

  std::string forged = token;
  forged[forged.size() - 3] = forged[forged.size() - 3] == 'A' ? 'B' : 'A';
  for (const std::string& bad : {forged, std::string("nonsense"), std::string("")}) {
    auto f = Exec("/execution/v1/finish", {{"worker_id", claim["worker_id"]},
                                           {"results", {{{"token", bad}, {"state", "success"}}}}});
    EXPECT_EQ(f.status, 401) << f.body;
    auto l = Exec("/execution/v1/logs", {{"chunks", {{{"token", bad}, {"data", "x"}}}}});
    EXPECT_EQ(l.status, 401) << l.body;
  }
  // A good token in the same batch as a bad one: still nothing done.
  auto mixed = Exec(
      "/execution/v1/finish",
      {{"worker_id", claim["worker_id"]},
       {"results",
        {{{"token", token}, {"state", "success"}}, {{"token", forged}, {"state", "success"}}}}});
  EXPECT_EQ(mixed.status, 401);
  EXPECT_EQ(Ti("t", run, "a")["state"], "running");
  // Another deployment's path refuses this deployment's token.
  ASSERT_EQ(Call("POST", "/api/v1/deployments", {{"name", "other"}}).status, 201);
  auto foreign = Exec(
      "/deployments/other/execution/v1/finish",
      {{"worker_id", claim["worker_id"]}, {"results", {{{"token", token}, {"state", "success"}}}}});
  EXPECT_EQ(foreign.status, 403) << foreign.body;
  EXPECT_EQ(Ti("t", run, "a")["state"], "running");
  // Another worker cannot finish it even with the token: nothing applies, which is a 409.
  auto thief =
      Exec("/execution/v1/finish", {{"worker_id", "00000000-0000-4000-8000-000000000002"},
                                    {"results", {{{"token", token}, {"state", "success"}}}}});
  EXPECT_EQ(thief.status, 409) << thief.body;
  EXPECT_EQ(Ti("t", run, "a")["state"], "running");
  // The real worker can.
  auto ok = Exec("/execution/v1/finish", {{"worker_id", claim["worker_id"]},
                                          {"results", {{{"token", token}, {"state", "success"}}}}});
  ASSERT_EQ(ok.status, 200);
  EXPECT_EQ(Parse(ok)["results"][0]["applied"], true);
  EXPECT_EQ(Ti("t", run, "a")["state"], "success");
  // The try has ended: its token, replayed, acts on nothing — a report again is 409 and
  // changes no state, a log chunk is 409 and reaches no log, a heartbeat tells to stop it.
  // (That it renews no ended try's token: AnEndedTrysTokenIsNotRenewed, with a 4 s life.)
  auto again = Exec(
      "/execution/v1/finish",
      {{"worker_id", claim["worker_id"]}, {"results", {{{"token", token}, {"state", "failed"}}}}});
  EXPECT_EQ(again.status, 409) << again.body;
  EXPECT_NE(again.body.find("has ended"), std::string::npos) << again.body;
  EXPECT_EQ(Ti("t", run, "a")["state"], "success");
  auto replayed_log =
      Exec("/execution/v1/logs", {{"chunks", {{{"token", token}, {"data", "REPLAYED LINE\n"}}}}});
  EXPECT_EQ(replayed_log.status, 409) << replayed_log.body;
  EXPECT_EQ(Log("t", run, "a", 1).find("REPLAYED LINE"), std::string::npos);
  auto beat = Exec("/execution/v1/heartbeat", {{"worker_id", claim["worker_id"]},
                                               {"hostname", "test"},
                                               {"capacity", 1},
                                               {"tokens", {token}}});
  ASSERT_EQ(beat.status, 200) << beat.body;
  EXPECT_EQ(Parse(beat)["stop"], Json::array({Ti("t", run, "a")["id"]})) << beat.body;
  EXPECT_EQ(Ti("t", run, "a")["state"], "success");
}

// A heartbeat past half a token's life renews the tokens of tries the worker still runs, never
// that of a try that has ended (a replayed token gets no fresh life).
TEST_F(PipelineRunTest, AnEndedTrysTokenIsNotRenewed) {
  StartRegion(0, "  task_token_ttl_seconds: 4\n");
  CreateDeployment("renew");
  Deploy({{"r.yaml",
           "r:\n  tasks:\n    a: {operator: bash, bash_command: 'sleep 30'}\n"
           "    b: {operator: bash, bash_command: 'sleep 30'}\n"}});
  Unpause("r");
  std::string run = Trigger("r");
  Json claim = {{"worker_id", "00000000-0000-4000-8000-000000000003"},
                {"hostname", "test"},
                {"slots", 2},
                {"capacity", 2},
                {"wait_ms", 2000}};
  Json tasks = Json::array();
  ASSERT_TRUE(WaitFor(
      [&] {
        auto r = Exec("/execution/v1/claim", claim);
        EXPECT_EQ(r.status, 200) << r.body;
        for (const Json& t : Parse(r).value("tasks", Json::array())) tasks.push_back(t);
        return tasks.size() >= 2;
      },
      30s));
  ASSERT_EQ(tasks.size(), 2u) << tasks.dump();
  const auto claimed = std::chrono::steady_clock::now();
  const std::string ended = tasks[0]["token"];
  const std::string running = tasks[1]["token"];
  auto done = Exec(
      "/execution/v1/finish",
      {{"worker_id", claim["worker_id"]}, {"results", {{{"token", ended}, {"state", "success"}}}}});
  ASSERT_EQ(done.status, 200) << done.body;
  // Past half of the 4 s life, within it.
  std::this_thread::sleep_until(claimed + 2200ms);
  auto beat = Exec("/execution/v1/heartbeat", {{"worker_id", claim["worker_id"]},
                                               {"hostname", "test"},
                                               {"capacity", 2},
                                               {"tokens", {ended, running}}});
  ASSERT_LT(std::chrono::steady_clock::now() - claimed, 4s) << "too slow to tell";
  ASSERT_EQ(beat.status, 200) << beat.body;
  const Json renewed = Parse(beat).value("renewed", Json::object());
  const std::string ended_id = tasks[0]["ti_id"];
  const std::string running_id = tasks[1]["ti_id"];
  EXPECT_TRUE(renewed.contains(running_id)) << beat.body;
  EXPECT_FALSE(renewed.contains(ended_id)) << beat.body;
  EXPECT_EQ(Parse(beat)["stop"], Json::array({ended_id})) << beat.body;
}

// Secrets a task was given are masked in its log as it is written — a connection's password, in
// the clear and inside its URI, a sensitive extra field, a secret variable and a secret env var,
// even one printed in two writes a second apart — and in its return value; what is not secret
// is left alone.
TEST_F(PipelineRunTest, SecretsAreMaskedInTaskLogsAndReturnValues) {
  StartRegion(1);
  CreateDeployment("masked");
  ASSERT_EQ(Call("POST", Root() + "/connections",
                 {{"connection_id", "wh"},
                  {"conn_type", "postgres"},
                  {"host", "wh.example"},
                  {"login", "loader"},
                  {"password", "hunter2/pass"},
                  {"extra", R"({"api_token": "tok-123456", "region": "eu-west-1"})"}})
                .status,
            201);
  ASSERT_EQ(Call("POST", Root() + "/variables",
                 {{"key", "api_key"}, {"value", "var-s3cr3t"}, {"is_secret", true}})
                .status,
            201);
  ASSERT_EQ(
      Call("POST", Root() + "/variables", {{"key", "colour"}, {"value", "plain-blue"}}).status,
      201);
  ASSERT_EQ(Call("PUT", "/api/v1/deployments/masked/env/DB_PASS",
                 {{"value", "env-s3cr3t"}, {"is_secret", true}})
                .status,
            200);
  Deploy({{"m.yaml", R"(m:
  tasks:
    leak:
      operator: bash
      bash_command: >-
        echo "uri=$AIRFLOW_CONN_WH"; echo "pw={{ conn.wh.password }}";
        echo "var={{ var.value.api_key }} colour={{ var.value.colour }}";
        echo "env=$DB_PASS" >&2; printf 'split=hunter2/'; sleep 1; printf 'pass\n';
        echo "extra $AIRFLOW_CONN_WH" | grep -o 'tok-123456'; echo "host=wh.example";
        echo "last {{ conn.wh.password }}"
)"}});
  Unpause("m");
  std::string run = Trigger("m");
  ASSERT_EQ(WaitRun("m", run), "success") << Logs();
  const std::string log = Log("m", run, "leak", 1);
  for (const char* secret :
       {"hunter2/pass", "hunter2%2Fpass", "tok-123456", "var-s3cr3t", "env-s3cr3t", "pass\n"}) {
    EXPECT_EQ(log.find(secret), std::string::npos) << secret << " is in the log:\n" << log;
  }
  EXPECT_NE(log.find("pw=***"), std::string::npos) << log;
  // The split one: stderr's line may come between its halves in the log, never its halves.
  EXPECT_NE(log.find("split="), std::string::npos) << log;
  EXPECT_EQ(log.find("hunter2"), std::string::npos) << log;
  EXPECT_NE(log.find("env=***"), std::string::npos) << log;
  EXPECT_NE(log.find("var=*** colour=plain-blue"), std::string::npos) << log;
  EXPECT_NE(log.find("host=wh.example"), std::string::npos) << log;
  EXPECT_NE(log.find("postgres://loader:***@wh.example"), std::string::npos) << log;
  auto x = Call("GET", RunPath("m", run) + "/taskInstances/leak/xcomEntries/return_value");
  ASSERT_EQ(x.status, 200) << x.body;
  EXPECT_EQ(Parse(x)["value"], "last ***");
}

// Started as root (as `tandem up` and CI run), a worker runs each deployment's tasks as a user
// of that deployment's own: not root, not another deployment's, and unable to read the region's
// secret key, its worker's credential (in the worker's environment) or another deployment's
// files.
TEST_F(PipelineRunTest, TasksRunAsAUserOfTheirDeploymentsOwn) {
  if (geteuid() != 0) GTEST_SKIP() << "switching users needs root, which CI and `tandem up` have";
  StartRegion(1);
  CreateDeployment("alpha");
  Deploy({{"a.yaml", R"yaml(a:
  tasks:
    keep:
      operator: bash
      bash_command: >-
        echo "uid=$(id -u) gid=$(id -g) groups=$(id -G)"; echo alpha-private > mine.txt;
        echo "dir=$PWD home=$HOME mode=$(stat -c %a .) file=$(stat -c %a mine.txt)"; sleep 30
)yaml"}});
  Unpause("a");
  std::string alpha_run = Trigger("a");
  std::string alpha_log;
  ASSERT_TRUE(WaitFor(
      [&] {
        alpha_log = Log("a", alpha_run, "keep", 1);
        return alpha_log.find("dir=") != std::string::npos;
      },
      30s))
      << alpha_log << Logs();
  const size_t at = alpha_log.find("uid=") + 4;
  const std::string alpha_uid = alpha_log.substr(at, alpha_log.find(' ', at) - at);
  EXPECT_NE(alpha_uid, "0") << alpha_log;
  EXPECT_NE(alpha_log.find("gid=" + alpha_uid + " groups=" + alpha_uid + "\n"), std::string::npos)
      << "the task's group and groups: " << alpha_log;
  const size_t d = alpha_log.find("dir=") + 4;
  const std::string alpha_dir = alpha_log.substr(d, alpha_log.find(' ', d) - d);
  EXPECT_NE(alpha_log.find("home=" + alpha_dir + " mode=700 file=600"), std::string::npos)
      << alpha_log;

  CreateDeployment("beta");
  Deploy({{"b.yaml",
           "b:\n  tasks:\n    probe:\n      operator: bash\n      bash_command: >-\n"
           "        echo \"uid=$(id -u)\";\n"
           "        cat " +
               region_->dir() +
               "/secret.key && echo KEY-READ || "
               "echo key-refused;\n"
               "        W=$(awk '{print $4}' /proc/$PPID/stat);\n"
               "        grep -a TANDEM_WORKER_TOKEN /proc/$W/environ && echo ENV-READ || "
               "echo env-refused;\n"
               "        cat " +
               alpha_dir +
               "/mine.txt && echo FILE-READ || "
               "echo file-refused\n"}});
  Unpause("b");
  std::string beta_run = Trigger("b");
  ASSERT_EQ(WaitRun("b", beta_run), "success") << Logs();
  const std::string beta_log = Log("b", beta_run, "probe", 1);
  EXPECT_EQ(beta_log.find("uid=0\n"), std::string::npos) << beta_log;
  EXPECT_EQ(beta_log.find("uid=" + alpha_uid + "\n"), std::string::npos)
      << "two deployments' tasks ran as one user:\n"
      << beta_log;
  for (const char* leaked : {"KEY-READ", "ENV-READ", "FILE-READ", "alpha-private", "tandem_"}) {
    EXPECT_EQ(beta_log.find(leaked), std::string::npos) << leaked << ":\n" << beta_log;
  }
  for (const char* refused : {"key-refused", "env-refused", "file-refused"}) {
    EXPECT_NE(beta_log.find(refused), std::string::npos) << refused << ":\n" << beta_log;
  }
}

// Worker credentials: one made for a deployment claims that deployment's tasks only, whatever
// path it is sent to, and is refused on another's; it is shown once, listed, and refused from
// the request after its revocation; only the deployment's admins may make one.
TEST_F(PipelineRunTest, WorkerCredentialsAreScopedToTheirDeploymentAndRevocable) {
  StartRegion(0);
  for (const char* d : {"mine", "theirs"}) {
    CreateDeployment(d);
    Deploy({{"w.yaml", "w:\n  tasks:\n    a: {operator: bash, bash_command: 'sleep 30'}\n"}});
    Unpause("w");
    Trigger("w");
  }
  // The CLI makes it, and prints it once.
  CliRun made = RunCli({"--url", region_->url(), "worker-credential", "create", "etl-workers",
                        "--deployment", "mine"});
  ASSERT_EQ(made.exit_code, 0) << made.output;
  const size_t at = made.output.find("tandem_");
  ASSERT_NE(at, std::string::npos) << made.output;
  const std::string credential = made.output.substr(at, made.output.find('\n', at) - at);
  const std::string id = credential.substr(7, 32);
  // Its claims, on the region-wide path, get `mine`'s tasks only.
  Json claim = {{"worker_id", "00000000-0000-4000-8000-000000000007"},
                {"hostname", "test"},
                {"slots", 10},
                {"capacity", 10},
                {"wait_ms", 2000}};
  Json tasks = Json::array();
  ASSERT_TRUE(WaitFor(
      [&] {
        auto r = Exec("/execution/v1/claim", claim, credential);
        EXPECT_EQ(r.status, 200) << r.body;
        for (const Json& t : Parse(r).value("tasks", Json::array())) tasks.push_back(t);
        return !tasks.empty();
      },
      30s));
  auto mine = Parse(Call("GET", "/api/v1/deployments/mine"));
  for (const Json& t : tasks) EXPECT_EQ(t["deployment_id"], mine["id"]) << t.dump();
  // `theirs`' path refuses it, and `theirs`' task stays queued for its own workers.
  auto foreign = Exec("/deployments/theirs/execution/v1/claim", claim, credential);
  EXPECT_EQ(foreign.status, 403) << foreign.body;
  EXPECT_EQ(Count("SELECT count(*) FROM task_instances ti JOIN deployments d ON d.id = "
                  "ti.deployment_id WHERE d.name = 'theirs' AND ti.state = 'running'"),
            0);
  // Listed without its secret.
  auto list = Call("GET", "/api/v1/deployments/mine/worker-credentials");
  ASSERT_EQ(list.status, 200) << list.body;
  EXPECT_EQ(list.body.find(credential.substr(40)), std::string::npos) << "the secret is listed";
  ASSERT_EQ(Parse(list)["worker_credentials"].size(), 1u) << list.body;
  EXPECT_EQ(Parse(list)["worker_credentials"][0]["id"], id);
  // Only the deployment's admins may make one: an editor's token is refused.
  auto editor =
      Call("POST", "/api/v1/deployments/mine/tokens", {{"name", "ed"}, {"role", "editor"}});
  ASSERT_EQ(editor.status, 201) << editor.body;
  auto refused = Http(region_->url(), "POST", "/api/v1/deployments/mine/worker-credentials",
                      R"({"name":"sneaky"})",
                      {{"Authorization", "Bearer " + Parse(editor)["token"].get<std::string>()}});
  EXPECT_EQ(refused.status, 403) << refused.body;
  // Bad input changes nothing.
  EXPECT_EQ(Call("POST", "/api/v1/deployments/mine/worker-credentials", {{"name", ""}}).status,
            422);
  EXPECT_EQ(Call("POST", "/api/v1/deployments/mine/worker-credentials",
                 {{"name", "x"}, {"expires_in_seconds", 0}})
                .status,
            422);
  EXPECT_EQ(Call("DELETE", "/api/v1/worker-credentials/" + id).status, 404)
      << "a deployment's credential is not the platform pool's";
  EXPECT_EQ(Parse(Call("GET", "/api/v1/deployments/mine/worker-credentials"))["worker_credentials"]
                .size(),
            1u);
  // Revoked: the very next request is refused, saying so.
  CliRun revoked =
      RunCli({"--url", region_->url(), "worker-credential", "revoke", id, "--deployment", "mine"});
  ASSERT_EQ(revoked.exit_code, 0) << revoked.output;
  auto after = Exec("/execution/v1/claim", claim, credential);
  EXPECT_EQ(after.status, 401) << after.body;
  EXPECT_NE(after.body.find("revoked"), std::string::npos) << after.body;
}

// Task tokens last minutes (here 4 s) and heartbeats renew them: a task that runs past its
// first token's life still reports, and its log is whole.
TEST_F(PipelineRunTest, HeartbeatsRenewTaskTokensOfLongTasks) {
  StartRegion(1, "  task_token_ttl_seconds: 4\n");
  CreateDeployment("long");
  Deploy(
      {{"l.yaml",
        "l:\n  tasks:\n    a: {operator: bash, bash_command: 'sleep 9; echo finished late'}\n"}});
  Unpause("l");
  std::string run = Trigger("l");
  EXPECT_EQ(WaitRun("l", run, 60s), "success") << Logs();
  EXPECT_EQ(Ti("l", run, "a")["try_number"], 1);
  EXPECT_NE(Log("l", run, "a", 1).find("finished late"), std::string::npos)
      << Log("l", run, "a", 1);
}

// A claim answer can take seconds to reach its worker (hundreds of tasks rendered on a busy
// region), and a heartbeat taken before it arrived does not list its tries: the worker says
// which claims it had started (claims_through), and only their tries are judged lost.
TEST_F(PipelineRunTest, AHeartbeatJudgesOnlyTheClaimsTheWorkerHadSeen) {
  StartRegion(0);
  CreateDeployment("seen");
  Deploy({{"s.yaml", "s:\n  tasks:\n    a: {operator: bash, bash_command: 'sleep 30'}\n"}});
  Unpause("s");
  Json worker = {
      {"worker_id", "00000000-0000-4000-8000-000000000003"}, {"hostname", "test"}, {"capacity", 1}};
  Json claim = worker;
  claim["slots"] = 1;
  // A claim before anything is queued: its claims_through predates the try.
  auto before = Exec("/execution/v1/claim", claim);
  ASSERT_EQ(before.status, 200) << before.body;
  ASSERT_TRUE(Parse(before)["claims_through"].is_number_integer()) << before.body;
  const int64_t earlier = Parse(before)["claims_through"];
  std::string run = Trigger("s");
  Json tasks = Json::array();
  int64_t through = 0;
  claim["wait_ms"] = 10000;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto r = Exec("/execution/v1/claim", claim);
        EXPECT_EQ(r.status, 200) << r.body;
        tasks = Parse(r).value("tasks", Json::array());
        through = Parse(r).value("claims_through", int64_t{0});
        return !tasks.empty();
      },
      30s));
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_GT(through, earlier);
  // Past the grace of two heartbeats (0.5 s each) and a second.
  std::this_thread::sleep_for(2500ms);

  Json beat = worker;
  beat["tokens"] = Json::array();
  // Bad values change nothing.
  for (const Json& bad : {Json("1"), Json(-1), Json(1.5), Json(nullptr)}) {
    beat["claims_through"] = bad;
    auto r = Exec("/execution/v1/heartbeat", beat);
    EXPECT_EQ(r.status, 422) << bad.dump() << ": " << r.body;
    EXPECT_NE(Parse(r).value("detail", "").find("claims_through"), std::string::npos) << r.body;
  }
  // A heartbeat of a worker that had not seen the claim yet: the try is not judged.
  beat["claims_through"] = earlier;
  auto early = Exec("/execution/v1/heartbeat", beat);
  ASSERT_EQ(early.status, 200) << early.body;
  EXPECT_EQ(Ti("s", run, "a")["state"], "running");
  // Once the worker had seen it and still does not list it, the try is lost.
  beat["claims_through"] = through;
  auto late = Exec("/execution/v1/heartbeat", beat);
  ASSERT_EQ(late.status, 200) << late.body;
  EXPECT_NE(Ti("s", run, "a")["state"], "running");
}

TEST_F(PipelineRunTest, TheHostHeaderSelectsTheDeployment) {
  StartRegion(0);
  CreateDeployment("hosted");
  Deploy({{"a.yaml", "a:\n  tasks:\n    x: {operator: empty}\n"}});
  std::string ns = Parse(Call("GET", "/api/v1/deployments/hosted")).value("namespace", "");
  ASSERT_FALSE(ns.empty());
  httplib::Client cli(region_->url());
  cli.set_bearer_token_auth(OwnerToken());
  auto r = cli.Get("/api/v2/dags", {{"Host", ns + ".tandem.test"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(Json::parse(r->body)["dags"][0]["dag_id"], "a");
  auto exec = cli.Get("/api/v2/dags", {{"Host", ns + "-exec.tandem.test:8080"}});
  ASSERT_TRUE(exec);
  EXPECT_EQ(exec->status, 200);
  auto unknown = cli.Get("/api/v2/dags", {{"Host", "nobody-000000.tandem.test"}});
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 404);
  EXPECT_NE(unknown->body.find("nobody-000000.tandem.test"), std::string::npos);
}

}  // namespace
}  // namespace tandem::testing
