// The region pair end to end: a control plane and two regions, real PostgreSQL streaming
// replication, real processes killed for real. The failover tests end with the same checks (the
// promises of docs/disaster-recovery.md): no acknowledged write lost where the mode promises it,
// every deployment's resources as before, and a scheduled DAG's minutes each run exactly once and
// finished — none twice, none skipped, no try left running with a lost region.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <thread>

#include "base/fs.h"
#include "base/text.h"
#include "dag/timetable.h"
#include "harness/pair_harness.h"
#include "rpc/client.h"

namespace tandem::testing {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

Json Body(const HttpReply& r) {
  Json j = Json::parse(r.body, nullptr, false);
  return j.is_discarded() ? Json(nullptr) : j;
}

std::string Root(const std::string& d) { return "/deployments/" + d + "/api/v2"; }

// A string field, "" when absent or null (a task instance's state is null before it is set).
std::string Str(const Json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}

class PairTest : public ::testing::Test {
 protected:
  void Start(const PairProcess::Options& o = {}) {
    auto p = PairProcess::Create(o);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    pair_ = std::move(p).value();
    Status s = pair_->StartAll();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  std::string Active() {
    Json s = pair_->DrStatus();
    return s.is_object() ? s.value("active", "") : "";
  }
  std::string ActiveUrl() { return pair_->region_url(Active()); }

  HttpReply OnActive(const std::string& method, const std::string& path, const Json& body = {}) {
    return Http(ActiveUrl(), method, path, body.is_null() ? "" : body.dump());
  }

  // A deployment with an env var, a connection, a variable and a pool: what must survive.
  std::string CreateDeployment(const std::string& name) {
    auto r = OnActive("POST", "/api/v1/deployments", {{"name", name}});
    EXPECT_EQ(r.status, 201) << r.body;
    std::string id = Body(r).value("id", "");
    EXPECT_EQ(OnActive("PUT", "/api/v1/deployments/" + id + "/env/GREETING",
                       {{"value", "hello"}, {"is_secret", false}})
                  .status / 100,
              2);
    EXPECT_EQ(OnActive("POST", Root(id) + "/connections",
                       {{"connection_id", "warehouse"}, {"conn_type", "postgres"},
                        {"host", "db.internal"}, {"password", "s3cret"}})
                  .status,
              201);
    EXPECT_EQ(OnActive("POST", Root(id) + "/variables", {{"key", "colour"}, {"value", "blue"}})
                  .status,
              201);
    EXPECT_EQ(OnActive("POST", Root(id) + "/pools",
                       {{"name", "narrow"}, {"slots", 3}, {"include_deferred", false}})
                  .status,
              201);
    DeployTicker(id, "");
    return id;
  }

  // Deploys a bundle of `extra_dags` and the ticker: a DAG scheduled every minute with catchup
  // from two minutes before its first deploy, whose runs CheckInvariants reads. Every failover
  // test thus has scheduled work the failover could run twice, skip or leave unfinished.
  void DeployTicker(const std::string& id, const std::string& extra_dags) {
    auto [at, fresh] = ticker_start_.try_emplace(
        id, std::chrono::floor<std::chrono::minutes>(std::chrono::system_clock::now()) -
                std::chrono::minutes(2));  // a dag::TimePoint: whole minutes
    const std::string bundle = extra_dags + R"(
ticker:
  schedule: "* * * * *"
  catchup: true
  start_date: ")" + dag::FormatTimeZ(at->second) +
                               R"("
  tasks:
    tick:
      operator: bash
      retries: 2
      retry_delay: 1s
      bash_command: echo tick
)";
    HttpReply d = OnActive("POST", "/api/v1/deployments/" + id + "/bundle",
                           {{"files", {{"dags.yaml", bundle}}}});
    ASSERT_EQ(d.status, 200) << d.body;
    ASSERT_EQ(OnActive("PATCH", Root(id) + "/dags/ticker", {{"is_paused", false}}).status, 200);
  }

  // Everything a user can read about a deployment, from `url`.
  Json Snapshot(const std::string& url, const std::string& id) {
    Json s;
    for (const std::string& path :
         {"/api/v1/deployments/" + id, "/api/v1/deployments/" + id + "/env",
          Root(id) + "/connections", Root(id) + "/variables?limit=10", Root(id) + "/pools"}) {
      HttpReply r = Http(url, "GET", path);
      EXPECT_EQ(r.status, 200) << path << ": " << r.body;
      s[path] = Body(r);
    }
    // A pool's occupancy moves with the ticker's tasks; what a failover must keep is its setting.
    for (Json& p : s[Root(id) + "/pools"]["pools"]) {
      for (const char* k : {"occupied_slots", "running_slots", "queued_slots", "scheduled_slots",
                            "open_slots", "deferred_slots"}) {
        p.erase(k);
      }
    }
    return s;
  }

  // The invariants every failover test ends with, read on the active region: each deployment's
  // ticker has run every minute since its start date exactly once (no interval created twice,
  // none skipped), and every run whose minute is over finished (no try left running or queued
  // with a lost region). Waits up to a minute for the new region's scheduler and reaper.
  void CheckInvariants() {
    ASSERT_FALSE(ticker_start_.empty()) << "no deployment has a ticker to check";
    for (const auto& entry : ticker_start_) {
      const std::string& id = entry.first;
      const dag::TimePoint start = entry.second;
      SCOPED_TRACE("deployment " + id);
      std::string problem;
      Status held = pair_->WaitStatus(
          [&](const Json&) {
            problem = TickerProblem(id, start);
            return problem.empty();
          },
          60s, "the ticker's runs, once per minute and finished");
      EXPECT_TRUE(held.ok()) << problem;
    }
  }

  // What is wrong with the ticker's runs in deployment `id`, or "".
  std::string TickerProblem(const std::string& id, dag::TimePoint start) {
    HttpReply r = OnActive("GET", Root(id) + "/dags/ticker/dagRuns?limit=1000");
    if (r.status != 200) return "listing the runs answered " + std::to_string(r.status);
    const Json runs = Body(r);  // kept: a range-for over a temporary's member would dangle
    std::map<std::string, Json> by_start;  // data_interval_start → run
    for (const Json& run : runs["dag_runs"]) {
      const std::string from = Str(run, "data_interval_start").substr(0, 19);  // to seconds
      if (!by_start.emplace(from, run).second) return "two runs for the interval from " + from;
    }
    // Every minute that ended at least 20 s ago has its run, and that run finished.
    const auto now = std::chrono::system_clock::now();
    int expected = 0;
    for (auto t = start; t + 1min + 20s <= now; t += 1min, ++expected) {
      const std::string from = dag::FormatTimeZ(t).substr(0, 19);
      auto it = by_start.find(from);
      if (it == by_start.end()) {
        std::string have;
        for (const auto& [k, v] : by_start) have.append(" ").append(k);
        return std::string("no run for the interval from ")
            .append(from)
            .append("; runs from:")
            .append(have);
      }
      if (Str(it->second, "state") != "success") {
        return "the run from " + from + " is " + it->second.dump();
      }
    }
    if (expected < 2) return "fewer than two intervals have ended yet";
    if (by_start.size() > static_cast<size_t>(expected) + 2) {
      return std::to_string(by_start.size()) + " runs for " + std::to_string(expected) +
             " ended intervals";
    }
    return "";
  }

  std::map<std::string, dag::TimePoint> ticker_start_;
  std::unique_ptr<PairProcess> pair_;
};

// Writes variables through the API as fast as it can, always to the region the control plane
// says is active, and records which writes were acknowledged.
class Writer {
 public:
  Writer(PairTest* t, PairProcess* pair, std::string deployment)
      : pair_(pair), deployment_(std::move(deployment)) {
    (void)t;
    thread_ = std::thread([this] { Run(); });
  }
  ~Writer() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::vector<std::string> acked() {
    std::lock_guard lock(mu_);
    return acked_;
  }
  int refused() const { return refused_; }

 private:
  void Run() {
    std::string url;
    for (int i = 0; !stop_; ++i) {
      if (url.empty() || i % 50 == 0) {
        Json s = pair_->DrStatus();
        if (s.is_object()) url = pair_->region_url(s.value("active", "region-a"));
      }
      std::string key = "w" + std::to_string(i);
      HttpReply r = Http(url, "POST", Root(deployment_) + "/variables",
                         Json{{"key", key}, {"value", std::to_string(i)}}.dump());
      if (r.status == 201) {
        std::lock_guard lock(mu_);
        acked_.push_back(key);
      } else {
        ++refused_;
        url.clear();  // a standby, a stepped-down primary or no answer: ask again
        std::this_thread::sleep_for(20ms);
      }
    }
  }
  PairProcess* pair_;
  std::string deployment_;
  std::atomic<bool> stop_{false};
  std::atomic<int> refused_{0};
  std::mutex mu_;
  std::vector<std::string> acked_;
  std::thread thread_;
};

// Every variable key of a deployment, page by page.
std::set<std::string> VariableKeys(const std::string& url, const std::string& id) {
  std::set<std::string> keys;
  for (int offset = 0;; offset += 100) {
    Json v = Body(Http(url, "GET",
                       Root(id) + "/variables?limit=100&offset=" + std::to_string(offset)));
    if (!v.is_object() || v["variables"].empty()) break;
    for (const Json& x : v["variables"]) keys.insert(x["key"].get<std::string>());
  }
  return keys;
}

TEST_F(PairTest, StandbyStreamsAnswersReadsAndRefusesWrites) {
  Start();
  Json s = pair_->DrStatus();
  EXPECT_EQ(s["summary"], "Active: region-a (primary)");
  EXPECT_EQ(s["sync"]["state"], "syncing") << s.dump(2);
  EXPECT_EQ(s["epoch"], 1);
  EXPECT_EQ(s["regions"][0]["lease"], "holds");
  EXPECT_EQ(s["regions"][1]["lease"], "lacks");
  EXPECT_EQ(s["regions"][1]["role"], "standby");

  std::string id = CreateDeployment("mirrored");
  Json before = Snapshot(pair_->region_url("region-a"), id);
  // The standby has it within moments, and answers reads with it.
  Status seen = pair_->WaitStatus(
      [&](const Json&) {
        return Http(pair_->region_url("region-b"), "GET", Root(id) + "/variables/colour")
                   .status == 200;
      },
      10s, "the variable on the standby");
  ASSERT_TRUE(seen.ok()) << seen.ToString();
  EXPECT_EQ(Snapshot(pair_->region_url("region-b"), id), before);

  // Writes are refused with a clear reason, and change nothing.
  HttpReply w = Http(pair_->region_url("region-b"), "POST", Root(id) + "/variables",
                     Json{{"key", "nope"}, {"value", "x"}}.dump());
  EXPECT_EQ(w.status, 503) << w.body;
  EXPECT_NE(Body(w).value("detail", "").find("standby"), std::string::npos) << w.body;
  EXPECT_EQ(Http(pair_->region_url("region-a"), "GET", Root(id) + "/variables/nope").status, 404);

  // The CLI shows the same, and the control plane's metrics carry the figures.
  CliRun st = pair_->Cli({"dr", "status"});
  EXPECT_EQ(st.exit_code, 0) << st.output;
  EXPECT_NE(st.output.find("Active: region-a (primary)"), std::string::npos) << st.output;
  EXPECT_NE(st.output.find("syncing"), std::string::npos) << st.output;
  HttpReply m = Http(pair_->control_url(), "GET", "/metrics");
  for (const char* metric : {"tandem_dr_epoch", "tandem_dr_lag_bytes", "tandem_dr_rpo_seconds",
                             "tandem_dr_sync_state{", "tandem_dr_lease_held{"}) {
    EXPECT_NE(m.body.find(metric), std::string::npos) << metric;
  }
  // The internal API needs the pair's credential.
  EXPECT_EQ(Http(pair_->region_url("region-a"), "POST", "/internal/v1/dr/promote",
                 R"({"epoch": 9})")
                .status,
            401);
  EXPECT_EQ(Http(pair_->control_url(), "POST", "/internal/v1/dr/lease",
                 R"({"holder": "x", "epoch": 9, "duration_ms": 1000})")
                .status,
            401);
}

TEST_F(PairTest, SwitchoverUnderWritesLosesNothingAndFailbackReturns) {
  Start();
  std::string id = CreateDeployment("switch");
  Json before = Snapshot(pair_->region_url("region-a"), id);
  Writer writer(this, pair_.get(), id);
  std::this_thread::sleep_for(1s);
  // A failover nobody authenticated is refused, and the refusal goes to the trail too.
  EXPECT_EQ(Http(pair_->control_url(), "POST", "/api/v1/dr/failover", "{}",
                 {{"Authorization", ""}})
                .status,
            401);

  CliRun f = pair_->Cli({"dr", "failover"});
  ASSERT_EQ(f.exit_code, 0) << f.output << pair_->Logs();
  EXPECT_NE(f.output.find("promot"), std::string::npos) << f.output;
  std::this_thread::sleep_for(1s);
  writer.Stop();
  std::vector<std::string> acked = writer.acked();
  ASSERT_GT(acked.size(), 20u);

  Json s = pair_->DrStatus();
  EXPECT_EQ(s["active"], "region-b");
  EXPECT_EQ(s["epoch"], 2);
  EXPECT_EQ(s["summary"], "Active: region-b (failed over from region-a)");
  std::set<std::string> keys = VariableKeys(pair_->region_url("region-b"), id);
  for (const std::string& k : acked) EXPECT_TRUE(keys.count(k)) << "lost acknowledged " << k;
  Json after = Snapshot(pair_->region_url("region-b"), id);
  EXPECT_EQ(after["/api/v1/deployments/" + id], before["/api/v1/deployments/" + id]);
  EXPECT_EQ(after[Root(id) + "/connections"], before[Root(id) + "/connections"]);
  EXPECT_EQ(after[Root(id) + "/pools"], before[Root(id) + "/pools"]);
  CheckInvariants();

  // The old primary rejoins as a replica; then failback returns, again losing nothing.
  Status synced = pair_->WaitRejoined(60s);
  ASSERT_TRUE(synced.ok()) << synced.ToString();
  CliRun back = pair_->Cli({"dr", "failback"});
  ASSERT_EQ(back.exit_code, 0) << back.output << pair_->Logs();
  s = pair_->DrStatus();
  EXPECT_EQ(s["active"], "region-a");
  EXPECT_EQ(s["epoch"], 3);
  EXPECT_EQ(s["summary"], "Active: region-a (primary)");
  keys = VariableKeys(pair_->region_url("region-a"), id);
  for (const std::string& k : acked) EXPECT_TRUE(keys.count(k)) << "lost acknowledged " << k;
  CheckInvariants();
  // Events tell the story.
  CliRun ev = pair_->Cli({"dr", "events", "--limit", "200"});
  EXPECT_EQ(ev.exit_code, 0);
  EXPECT_NE(ev.output.find("failover_succeeded"), std::string::npos) << ev.output;
  EXPECT_NE(ev.output.find("failback_succeeded"), std::string::npos) << ev.output;
  // So does the replicated audit trail, in the region now active: who asked for each operation,
  // who was refused, and how each ended — written while region-b was active for the failover,
  // and carried back by replication.
  auto trail = [&](const std::string& event) {
    HttpReply r = Http(pair_->region_url("region-a"), "GET", "/api/v1/audit?event=" + event);
    EXPECT_EQ(r.status, 200) << r.body;
    return r.status == 200 ? Body(r)["events"] : Json::array();
  };
  Json asked, done, back_done, refused;
  for (int i = 0; i < 100; ++i) {
    asked = trail("post_failover");
    done = trail("failover_succeeded");
    back_done = trail("failback_succeeded");
    if (asked.size() >= 2 && done.size() == 1 && back_done.size() == 1) break;
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_EQ(asked.size(), 2u) << asked.dump();  // the refused one and the one that ran
  for (const Json& e : asked) {
    if (e["outcome"] == "refused") {
      refused = e;
    } else {
      EXPECT_EQ(e["principal"], "token bootstrap") << e.dump();
      EXPECT_EQ(e["status"], 202) << e.dump();
      EXPECT_EQ(e["detail"]["operation"], done[0]["detail"]["operation"]) << e.dump();
    }
  }
  EXPECT_EQ(refused.value("principal", ""), "anonymous") << asked.dump();
  EXPECT_EQ(refused.value("status", 0), 401) << asked.dump();
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0]["principal"], "token bootstrap") << done.dump();
  EXPECT_EQ(done[0]["outcome"], "ok");
  EXPECT_EQ(done[0]["detail"]["to"], "region-b") << done.dump();
  EXPECT_GT(done[0]["detail"].value("rto_seconds", -1.0), 0.0) << done.dump();
  ASSERT_EQ(back_done.size(), 1u)
      << Http(pair_->region_url("region-a"), "GET", "/api/v1/audit?limit=20").body;
  EXPECT_EQ(back_done[0]["detail"]["active"], "region-a") << back_done.dump();
}

TEST_F(PairTest, ForcedFailoverAfterRegionLossThenRewindAndFailback) {
  Start();
  std::string id = CreateDeployment("forced");
  Json before = Snapshot(pair_->region_url("region-a"), id);
  ASSERT_TRUE(pair_
                  ->WaitStatus([](const Json& s) { return s["lag"]["bytes"] == 0; }, 20s,
                               "no lag")
                  .ok());
  // Cut the standby off (lost for a moment) so the primary takes writes it never sees.
  pair_->KillRegion("region-b", SIGKILL);
  for (int i = 0; i < 5; ++i) {
    HttpReply r = Http(pair_->region_url("region-a"), "POST", Root(id) + "/variables",
                       Json{{"key", "lost" + std::to_string(i)}, {"value", "x"}}.dump());
    ASSERT_EQ(r.status, 201) << r.body << pair_->Logs();
  }
  // Now the primary region is lost whole: agent, workers and PostgreSQL.
  pair_->KillRegion("region-a", SIGKILL);
  ASSERT_TRUE(pair_->StartRegion("region-b").ok()) << pair_->Logs();
  CliRun f = pair_->Cli({"dr", "failover", "--forced"});
  ASSERT_EQ(f.exit_code, 0) << f.output << pair_->Logs();
  Json s = pair_->DrStatus();
  EXPECT_EQ(s["active"], "region-b");
  EXPECT_EQ(Snapshot(pair_->region_url("region-b"), id), before);
  // Work goes on in the new region.
  ASSERT_EQ(Http(pair_->region_url("region-b"), "POST", Root(id) + "/variables",
                 Json{{"key", "after"}, {"value", "y"}}.dump())
                .status,
            201);

  // The old primary comes back: it sees the higher epoch and rejoins, its writes discarded.
  ASSERT_TRUE(pair_->StartRegion("region-a").ok()) << pair_->Logs();
  Status synced = pair_->WaitRejoined(90s);
  ASSERT_TRUE(synced.ok()) << synced.ToString();
  std::set<std::string> on_a = VariableKeys(pair_->region_url("region-a"), id);
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(on_a.count("lost" + std::to_string(i)));
  EXPECT_TRUE(on_a.count("after"));
  CliRun ev = pair_->Cli({"dr", "events", "--limit", "200"});
  // The 5 writes, and the heartbeats region-a committed meanwhile (one each 500 ms).
  size_t at = ev.output.find("discarded ");
  ASSERT_NE(at, std::string::npos) << ev.output;
  int discarded = std::atoi(ev.output.c_str() + at + 10);
  EXPECT_GE(discarded, 5) << ev.output;
  EXPECT_LE(discarded, 5 + 20) << ev.output;

  CliRun back = pair_->Cli({"dr", "failback"});
  ASSERT_EQ(back.exit_code, 0) << back.output << pair_->Logs();
  std::set<std::string> keys = VariableKeys(pair_->region_url("region-a"), id);
  EXPECT_TRUE(keys.count("after"));
  EXPECT_TRUE(keys.count("colour"));
  CheckInvariants();
}

TEST_F(PairTest, RefusalsChangeNothing) {
  Start();
  // Failback when the original primary is already active.
  CliRun fb = pair_->Cli({"dr", "failback"});
  EXPECT_NE(fb.exit_code, 0);
  EXPECT_NE(fb.output.find("already"), std::string::npos) << fb.output;
  // A second failover while one runs.
  CliRun first = pair_->Cli({"dr", "failover", "--no-wait"});
  ASSERT_EQ(first.exit_code, 0) << first.output;
  CliRun second = pair_->Cli({"dr", "failover"});
  EXPECT_NE(second.exit_code, 0);
  EXPECT_NE(second.output.find("already running"), std::string::npos) << second.output;
  ASSERT_TRUE(pair_
                  ->WaitStatus([](const Json& s) { return s["operation"].is_null(); }, 60s,
                               "the failover to end")
                  .ok());
  Json s = pair_->DrStatus();
  EXPECT_EQ(s["epoch"], 2);
  // Failback before the reverse sync caught up: region-a is away.
  pair_->KillRegion("region-a", SIGKILL);
  CliRun early = pair_->Cli({"dr", "failback"});
  EXPECT_NE(early.exit_code, 0);
  EXPECT_NE(early.output.find("region-a"), std::string::npos) << early.output;
  // A failover to a region that is down.
  CliRun down = pair_->Cli({"dr", "failover"});
  EXPECT_NE(down.exit_code, 0);
  EXPECT_NE(down.output.find("region-a"), std::string::npos) << down.output;
  s = pair_->DrStatus();
  EXPECT_EQ(s["epoch"], 2);
  EXPECT_EQ(s["active"], "region-b");
  // Bad input to the API.
  HttpReply bad = Http(pair_->control_url(), "POST", "/api/v1/dr/failover", R"({"mode":"sideways"})");
  EXPECT_EQ(bad.status, 422);
  EXPECT_NE(Body(bad).value("detail", "").find("mode"), std::string::npos);
  EXPECT_EQ(Http(pair_->control_url(), "GET", "/api/v1/dr/operations/abc").status, 422);
  EXPECT_EQ(Http(pair_->control_url(), "GET", "/api/v1/dr/operations/999").status, 404);
  EXPECT_EQ(Http(pair_->control_url(), "GET", "/api/v1/dr/events?limit=0").status, 422);
  // JSON nested past the limit, to the control plane and to a region's internal routes (with
  // the pair's credential): 422, as the region API answers it.
  const std::string deep = std::string(100, '[') + std::string(100, ']');
  const std::string nested = R"({"mode":"planned","x":)" + deep + "}";
  HttpReply too_deep = Http(pair_->control_url(), "POST", "/api/v1/dr/failover", nested);
  EXPECT_EQ(too_deep.status, 422) << too_deep.body;
  EXPECT_NE(Body(too_deep).value("detail", "").find("nests deeper"), std::string::npos);
  Result<std::string> key = ReadFile(pair_->dir() + "/secret.key");
  ASSERT_TRUE(key.ok());
  Result<std::string> pair_credential = rpc::InternalCredential(std::string(TrimSpace(*key)));
  ASSERT_TRUE(pair_credential.ok());
  for (const char* path :
       {"/internal/v1/dr/promise", "/internal/v1/logs/chunks", "/internal/v1/logs/sizes"}) {
    HttpReply r =
        Http(pair_->region_url("region-b"), "POST", path, R"({"epoch": 2, "x": )" + deep + "}",
             {{"Authorization", "Bearer " + *pair_credential}});
    EXPECT_EQ(r.status, 422) << path << ": " << r.body;
    // And without the pair's credential: refused before anything is read.
    EXPECT_EQ(Http(pair_->region_url("region-b"), "POST", path, "{}").status, 401) << path;
  }
  EXPECT_EQ(pair_->DrStatus()["epoch"], 2);
}


// The control plane dies at a step of a planned failover and is started again: before the
// promotion the failover rolls back (region-a stays active), at the promotion it completes;
// never are two regions active with a lease.
TEST_F(PairTest, ControlPlaneKilledDuringFailoverRollsBackOrCompletes) {
  Start();
  std::string id = CreateDeployment("interrupted");
  struct Case {
    std::string failpoint, outcome, active;
  };
  for (const Case& c : {Case{"catching_up", "rolled_back", "region-a"},
                        Case{"promoting", "succeeded", "region-b"}}) {
    SCOPED_TRACE(c.failpoint);
    Status stopped = pair_->FailoverStoppingAt(c.failpoint);
    ASSERT_TRUE(stopped.ok()) << stopped.ToString() << pair_->Logs();
    Status done = pair_->WaitStatus(
        [&](const Json& s) {
          if (!s["operation"].is_null()) return false;
          int holding = 0;
          for (const Json& r : s["regions"]) holding += r.value("lease", "") == "holds";
          EXPECT_LE(holding, 1) << s.dump(2);
          return s["active"] == c.active && holding == 1;
        },
        90s, "the failover to " + c.outcome);
    ASSERT_TRUE(done.ok()) << done.ToString();
    Json ops = Body(Http(pair_->control_url(), "GET", "/api/v1/dr/operations"));
    EXPECT_EQ(ops["operations"][0]["state"], c.outcome) << ops.dump(2);
    // Who asked is kept with the operation, so its end names them after the restart too.
    const std::string asker = ops["operations"][0].value("started_by", "");
    EXPECT_FALSE(asker.empty() || asker == "control plane") << ops.dump(2);
    const std::string ended = "failover_" + c.outcome;
    Json trail;
    for (int i = 0; i < 100; ++i) {
      trail = Body(OnActive("GET", "/api/v1/audit?event=" + ended))["events"];
      if (trail.is_array() && !trail.empty()) break;
      std::this_thread::sleep_for(100ms);
    }
    ASSERT_TRUE(trail.is_array() && !trail.empty()) << ended << " is not in the trail";
    EXPECT_EQ(trail[0]["principal"], asker) << trail.dump(2);
    ASSERT_EQ(OnActive("POST", Root(id) + "/variables",
                       {{"key", "after-" + c.failpoint}, {"value", "x"}})
                  .status,
              201);
  }
  CheckInvariants();
}

// A task running in the lost region is retried in the new one (never the same try twice), and
// a schedule's intervals are each run exactly once across the failover.
TEST_F(PairTest, ForcedFailoverReconcilesRunningTasksAndSchedules) {
  Start();
  std::string id = CreateDeployment("work");
  DeployTicker(id, R"(
slow:
  schedule: null
  tasks:
    sleeper:
      operator: bash
      retries: 1
      retry_delay: 1s
      bash_command: |
        if [ "$AIRFLOW_CTX_TRY_NUMBER" = 1 ]; then sleep 300; fi
        echo "try $AIRFLOW_CTX_TRY_NUMBER done"
)");
  ASSERT_EQ(OnActive("PATCH", Root(id) + "/dags/slow", {{"is_paused", false}}).status, 200);
  HttpReply t = OnActive("POST", Root(id) + "/dags/slow/dagRuns",
                         {{"logical_date", nullptr}, {"conf", Json::object()}});
  ASSERT_EQ(t.status, 200) << t.body;
  const std::string run = Body(t)["dag_run_id"];
  const std::string ti = Root(id) + "/dags/slow/dagRuns/" + run + "/taskInstances/sleeper";
  ASSERT_TRUE(pair_
                  ->WaitStatus(
                      [&](const Json& s) {
                        return Str(Body(OnActive("GET", ti)), "state") == "running" &&
                               s["lag"]["bytes"] == 0;
                      },
                      60s, "the task to run, replicated")
                  .ok());

  pair_->KillRegion("region-a", SIGKILL);
  CliRun f = pair_->Cli({"dr", "failover", "--forced"});
  ASSERT_EQ(f.exit_code, 0) << f.output << pair_->Logs();
  // Try 1 was lost with its region; try 2 runs in region-b and succeeds.
  Status retried = pair_->WaitStatus(
      [&](const Json&) {
        Json j = Body(OnActive("GET", ti));
        return Str(j, "state") == "success" && j.value("try_number", 0) == 2;
      },
      90s, "try 2 to succeed in region-b");
  ASSERT_TRUE(retried.ok()) << retried.ToString();
  Json tries = Body(OnActive("GET", ti + "/tries"));
  ASSERT_EQ(tries["task_instances"].size(), 2u) << tries.dump(2);
  EXPECT_EQ(tries["task_instances"][0]["state"], "failed");
  // The ticker's minutes, before and after the failover, each ran exactly once.
  CheckInvariants();
  Json running = Body(OnActive("GET", Root(id) + "/dags/~/dagRuns/~/taskInstances?state=running"));
  for (const Json& x : running["task_instances"]) {
    EXPECT_NE(x["task_id"], "sleeper") << "try 1 is still running " << x.dump();
  }
}

// Synchronous mode: a forced failover loses no acknowledged write; with the standby gone the
// primary degrades to asynchronous after the timeout instead of stopping writes, and says so.
TEST_F(PairTest, SynchronousModeLosesNothingAndDegrades) {
  PairProcess::Options o;
  o.mode = "synchronous";
  o.synchronous_degrade_after_ms = 1500;
  Start(o);
  std::string id = CreateDeployment("sync");
  // Synchronous once the standby streams, with a commit latency once heartbeats were timed.
  Status timed = pair_->WaitStatus(
      [](const Json& s) {
        return s["sync"]["state"] == "syncing" && s["commit_ms"].is_number() &&
               s["commit_ms"].get<double>() > 0;
      },
      20s, "synchronous commits with their latency");
  EXPECT_TRUE(timed.ok()) << timed.ToString();
  Json s = pair_->DrStatus();
  EXPECT_EQ(s["mode"], "synchronous");
  EXPECT_EQ(s["synchronous_degraded"], false) << s.dump(2);

  // The standby goes away: writes go on once the pair degrades.
  pair_->KillRegion("region-b", SIGKILL);
  auto t0 = std::chrono::steady_clock::now();
  HttpReply w = Http(pair_->region_url("region-a"), "POST", Root(id) + "/variables",
                     Json{{"key", "while-degraded"}, {"value", "x"}}.dump());
  EXPECT_EQ(w.status, 201) << w.body;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 20s);
  Status degraded = pair_->WaitStatus(
      [](const Json& s) {
        return s["synchronous_degraded"] == true && s["sync"]["state"] == "broken";
      },
      20s, "the pair to show synchronous mode degraded");
  EXPECT_TRUE(degraded.ok()) << degraded.ToString();
  ASSERT_TRUE(pair_->StartRegion("region-b").ok()) << pair_->Logs();
  ASSERT_TRUE(pair_
                  ->WaitStatus([](const Json& s) { return s["sync"]["state"] == "syncing"; },
                               60s, "synchronous again")
                  .ok());

  // Writes under way when the primary region is lost: every acknowledged one survives.
  // The metadata RPO the status claims at the moment of the loss is held against the loss
  // measured: synchronous mode promises none (docs/disaster-recovery.md), so the claim must be 0
  // and no acknowledged write may be missing. (Task logs ship apart, so the whole RPO may not be.)
  Writer writer(this, pair_.get(), id);
  std::this_thread::sleep_for(1500ms);
  const Json claimed = pair_->DrStatus();
  pair_->KillRegion("region-a", SIGKILL);
  writer.Stop();
  std::vector<std::string> acked = writer.acked();
  ASSERT_GT(acked.size(), 10u);
  CliRun f = pair_->Cli({"dr", "failover", "--forced"});
  ASSERT_EQ(f.exit_code, 0) << f.output << pair_->Logs();
  std::set<std::string> keys = VariableKeys(pair_->region_url("region-b"), id);
  size_t lost = 0;
  for (const std::string& k : acked) {
    if (!keys.count(k)) ++lost;
    EXPECT_TRUE(keys.count(k)) << "lost acknowledged " << k;
  }
  EXPECT_EQ(claimed["rpo"]["metadata_seconds"], 0.0) << claimed.dump(2);
  EXPECT_EQ(lost, 0u) << "the status claimed a metadata RPO of "
                      << claimed["rpo"]["metadata_seconds"];
  EXPECT_TRUE(keys.count("while-degraded"));
  CheckInvariants();
}

// Automatic failover: the control plane and the standby both lose the primary for the
// detection window, and the control plane fails over by itself.
TEST_F(PairTest, AutomaticFailoverWhenThePrimaryIsLost) {
  PairProcess::Options o;
  o.automatic_failover = true;
  Start(o);
  std::string id = CreateDeployment("auto");
  ASSERT_TRUE(pair_
                  ->WaitStatus([](const Json& s) { return s["lag"]["bytes"] == 0; }, 20s,
                               "no lag")
                  .ok());
  pair_->KillRegion("region-a", SIGKILL);
  Status moved = pair_->WaitStatus(
      [](const Json& s) {
        return s["active"] == "region-b" && s["regions"][1]["lease"] == "holds";
      },
      30s, "the automatic failover");
  ASSERT_TRUE(moved.ok()) << moved.ToString();
  EXPECT_EQ(Http(pair_->region_url("region-b"), "GET", Root(id) + "/variables/colour").status,
            200);
  CliRun ev = pair_->Cli({"dr", "events"});
  EXPECT_NE(ev.output.find("automatic_failover"), std::string::npos) << ev.output;
  CheckInvariants();
}

// Network partitions, cut with nftables between the parts' own loopback addresses.
class PartitionTest : public PairTest {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "cutting links with nftables needs root";
    PairProcess::Options o;
    o.own_addresses = true;
    o.automatic_failover = true;
    Start(o);
  }
  // Writes through region-a; true when acknowledged.
  bool WriteToA(const std::string& id, const std::string& key) {
    return Http(pair_->region_url("region-a"), "POST", Root(id) + "/variables",
                Json{{"key", key}, {"value", "x"}}.dump())
               .status == 201;
  }
};

// Cut off from the control plane only, the primary keeps its lease through the standby, and
// nobody fails over (the standby still hears it), even with automatic failover on.
TEST_F(PartitionTest, PrimaryCutOffFromControlPlaneOnlyKeepsRunning) {
  std::string id = CreateDeployment("cut-control");
  Status cut = pair_->Cut("region-a", "control");
  ASSERT_TRUE(cut.ok()) << cut.ToString();
  Status lost = pair_->WaitStatus(
      [](const Json& s) { return !s["regions"][0]["reachable"].get<bool>(); }, 10s,
      "the control plane to lose region-a");
  ASSERT_TRUE(lost.ok()) << lost.ToString();
  // Three lease lengths later it still takes writes, and is still the only active region.
  for (int i = 0; i < 30; ++i) {
    EXPECT_TRUE(WriteToA(id, "k" + std::to_string(i))) << i;
    std::this_thread::sleep_for(200ms);
  }
  Json s = pair_->DrStatus();
  EXPECT_EQ(s["active"], "region-a");
  EXPECT_EQ(s["epoch"], 1);
  EXPECT_EQ(s["regions"][1]["role"], "standby");
  EXPECT_TRUE(s["operation"].is_null());
  pair_->Heal();
  ASSERT_TRUE(pair_
                  ->WaitStatus([](const Json& s) { return s["sync"]["state"] == "syncing"; },
                               10s, "the pair healed")
                  .ok());
}

// Cut off from both others, the primary stops acting (its lease runs out) before the standby is
// promoted; when the cut heals it sees the higher epoch and rejoins as a replica.
TEST_F(PartitionTest, PrimaryCutOffFromBothStopsBeforeTheStandbyIsPromoted) {
  std::string id = CreateDeployment("cut-both");
  ASSERT_TRUE(WriteToA(id, "before"));
  Status cut = pair_->Cut("region-a", "control");
  ASSERT_TRUE(cut.ok()) << cut.ToString();
  cut = pair_->Cut("region-a", "region-b");
  ASSERT_TRUE(cut.ok()) << cut.ToString();
  const auto cut_at = std::chrono::system_clock::now();
  // region-a refuses writes once its lease has run out.
  std::optional<std::chrono::system_clock::time_point> refused_at;
  for (int i = 0; i < 200 && !refused_at; ++i) {
    if (!WriteToA(id, "during" + std::to_string(i))) refused_at = std::chrono::system_clock::now();
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(refused_at.has_value()) << "region-a kept acting without a lease" << pair_->Logs();
  EXPECT_LT(*refused_at - cut_at, 3s);  // lease_ms 2 s
  // The control plane fails over by itself.
  Status moved = pair_->WaitStatus(
      [](const Json& s) { return s["active"] == "region-b" && s["operation"].is_null(); }, 30s,
      "the automatic failover");
  ASSERT_TRUE(moved.ok()) << moved.ToString();
  // The promotion came after region-a had stopped.
  Json events = Body(Http(pair_->control_url(), "GET", "/api/v1/dr/events?limit=200"));
  std::string promoting_at;
  for (const Json& e : events["events"]) {
    if (Str(e, "message").rfind("promoting", 0) == 0) promoting_at = Str(e, "at");
  }
  ASSERT_FALSE(promoting_at.empty()) << events.dump(2);
  // "2026-11-25T22:32:03.876Z": seconds by ParseTime, then the milliseconds.
  auto promoted_s = dag::ParseTime(promoting_at.substr(0, 19) + "Z");
  ASSERT_TRUE(promoted_s.ok()) << promoting_at;
  const std::chrono::system_clock::time_point promoted =
      std::chrono::system_clock::time_point(*promoted_s) +
      std::chrono::milliseconds(std::stoi(promoting_at.substr(20, 3)));
  EXPECT_LT(*refused_at, promoted) << "region-a acted until " << promoting_at;
  // region-a still refuses (it holds no lease; it cannot learn of the new epoch yet).
  EXPECT_FALSE(WriteToA(id, "still-cut"));
  pair_->Heal();
  Status rejoined = pair_->WaitRejoined(60s);
  ASSERT_TRUE(rejoined.ok()) << rejoined.ToString();
  EXPECT_EQ(Http(pair_->region_url("region-b"), "GET", Root(id) + "/variables/before").status,
            200);
  CheckInvariants();
}

}  // namespace
}  // namespace tandem::testing
