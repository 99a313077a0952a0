// Host names that follow the active region: the control plane's Knot DNS, asked with dig before
// and after a failover and a failback; regions answering requests by name only while active;
// the DNS server killed and restarted with the right records; a TSIG key the server refuses.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <set>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/fs.h"
#include "base/process.h"
#include "crypto/secret_box.h"
#include "dns/knot_server.h"
#include "harness/pair_harness.h"
#include "harness/pg_harness.h"

namespace tandem::testing {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

constexpr char kZone[] = "tandem.test";

Json Body(const HttpReply& r) {
  Json j = Json::parse(r.body, nullptr, false);
  return j.is_discarded() ? Json(nullptr) : j;
}

class DnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!RunningAsRoot()) GTEST_SKIP() << "needs root (own loopback addresses, nftables)";
    if (access("/usr/sbin/knotd", X_OK) != 0 || access("/usr/bin/dig", X_OK) != 0) {
      GTEST_SKIP() << "no knotd or dig (scripts/setup.sh installs knot and bind9-dnsutils)";
    }
  }

  void Create(PairProcess::Options o = {}) {
    o.own_addresses = true;
    o.dns = true;
    auto p = PairProcess::Create(o);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    pair_ = std::move(p).value();
  }
  void Start(PairProcess::Options o = {}) {
    Create(std::move(o));
    if (HasFatalFailure()) return;
    Status s = pair_->StartAll();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  // `dig +short` for `name` at the pair's DNS server: the addresses it answers, one per line.
  std::string Dig(const std::string& name) {
    SpawnOptions so;
    so.argv = {"/usr/bin/dig",
               "+short",
               "+time=1",
               "+tries=1",
               "-p",
               std::to_string(pair_->dns_port()),
               "@" + pair_->dns_address(),
               name,
               "A"};
    auto r = RunCommand(so, 10s);
    if (!r.ok()) return "dig: " + r.status().ToString();
    std::string out = r->output;
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    return out;
  }
  // Polls Dig(name) until it answers `want`; the last answer otherwise.
  std::string DigUntil(const std::string& name, const std::string& want,
                       std::chrono::seconds timeout = 15s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string got;
    while (std::chrono::steady_clock::now() < deadline) {
      got = Dig(name);
      if (got == want) break;
      std::this_thread::sleep_for(100ms);
    }
    return got;
  }

  // Polls the pair's events until one holds `text`.
  bool EventSeen(const std::string& text, std::chrono::seconds timeout = 15s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (pair_->Cli({"dr", "events", "--limit", "200"}).output.find(text) != std::string::npos) {
        return true;
      }
      std::this_thread::sleep_for(200ms);
    }
    return false;
  }

  // `dr failover --forced`, retried until the control plane has lost the primary (before the
  // detection window it refuses: a planned failover needs the primary to step down).
  CliRun ForcedFailover() {
    CliRun f;
    for (int i = 0; i < 40; ++i) {
      f = pair_->Cli({"dr", "failover", "--forced"});
      if (f.exit_code == 0) break;
      std::this_thread::sleep_for(500ms);
    }
    return f;
  }

  std::string Active() {
    Json s = pair_->DrStatus();
    return s.is_object() ? s.value("active", "") : "";
  }

  // Creates a deployment on the active region; its namespace.
  std::string CreateDeployment(const std::string& name) {
    HttpReply r = Http(pair_->region_url(Active()), "POST", "/api/v1/deployments",
                       Json{{"name", name}}.dump());
    EXPECT_EQ(r.status, 201) << r.body;
    return Body(r).value("namespace", "");
  }

  // GET `path` of region `region`, naming the deployment by its API host name only.
  HttpReply ByName(const std::string& region, const std::string& ns, const std::string& method,
                   const std::string& path, const std::string& body = "") {
    return Http(pair_->region_url(region), method, path, body,
                {{"Host", ns + "." + kZone + ":" + std::to_string(pair_->http_port(region))}});
  }

  std::unique_ptr<PairProcess> pair_;
};

TEST_F(DnsTest, HostNamesFollowTheActiveRegionThroughAFailoverAndAFailback) {
  Start();
  const std::string a = pair_->address("region-a"), b = pair_->address("region-b");
  const std::string ns = CreateDeployment("names");
  ASSERT_FALSE(ns.empty());
  const std::string api = ns + "." + kZone, exec = ns + "-exec." + kZone;
  // A new deployment's names appear within a few health checks.
  EXPECT_EQ(DigUntil(api, a), a) << pair_->Logs();
  EXPECT_EQ(Dig(exec), a);
  EXPECT_EQ(Dig(std::string("control.") + kZone), pair_->address("control"));
  EXPECT_EQ(Dig(std::string("nobody-000000.") + kZone), "");

  // By name, the active region answers; the standby says where to go, for reads and writes.
  EXPECT_EQ(ByName("region-a", ns, "GET", "/api/v2/variables").status, 200);
  HttpReply read_b = ByName("region-b", ns, "GET", "/api/v2/variables");
  EXPECT_EQ(read_b.status, 421) << read_b.body;
  EXPECT_NE(Body(read_b).value("detail", "").find("region-a at " + a), std::string::npos)
      << read_b.body;
  HttpReply write_b = ByName("region-b", ns, "POST", "/api/v2/variables",
                             Json{{"key", "k"}, {"value", "v"}}.dump());
  EXPECT_EQ(write_b.status, 421) << write_b.body;
  // By address and path, the standby still answers reads (an operator's view of the replica).
  Json depl = Body(Http(pair_->region_url("region-a"), "GET", "/api/v1/deployments"));
  ASSERT_FALSE(depl["deployments"].empty());

  Json st = pair_->DrStatus();
  EXPECT_EQ(st["dns"]["current"], true) << st.dump(2);
  EXPECT_EQ(st["dns"]["records"], 4) << st.dump(2);  // control, api, the deployment's two
  EXPECT_EQ(Dig(std::string("api.") + kZone), a);

  // A planned failover reports success only after the names moved: no waiting here.
  CliRun f = pair_->Cli({"dr", "failover"});
  ASSERT_EQ(f.exit_code, 0) << f.output << pair_->Logs();
  EXPECT_EQ(Dig(api), b);
  EXPECT_EQ(Dig(exec), b);
  EXPECT_EQ(Dig(std::string("control.") + kZone), pair_->address("control"));
  EXPECT_EQ(ByName("region-b", ns, "GET", "/api/v2/variables").status, 200);
  // The CLI, given only names and the DNS server, reaches the new active region.
  const std::string port = std::to_string(pair_->http_port("region-a"));
  const std::string dns = pair_->dns_address() + ":" + std::to_string(pair_->dns_port());
  CliRun list = RunCli({"--url", std::string("http://api.") + kZone + ":" + port, "--dns", dns,
                        "-o", "json", "deployment", "list"});
  EXPECT_EQ(list.exit_code, 0) << list.output;
  EXPECT_NE(list.output.find("\"names\""), std::string::npos) << list.output;
  CliRun status = RunCli({"--control",
                          std::string("http://control.") + kZone + ":" +
                              std::to_string(pair_->control_port()),
                          "--dns", dns, "dr", "status"});
  EXPECT_EQ(status.exit_code, 0) << status.output;
  EXPECT_NE(status.output.find("Active: region-b"), std::string::npos) << status.output;
  EXPECT_EQ(Http(pair_->region_url("region-a"), "GET", "/api/v1/deployments", "",
                 {{"Host", std::string("api.") + kZone}})
                .status,
            421);
  HttpReply read_a = ByName("region-a", ns, "GET", "/api/v2/variables");
  EXPECT_EQ(read_a.status, 421) << read_a.body;
  EXPECT_NE(Body(read_a).value("detail", "").find("region-b at " + b), std::string::npos)
      << read_a.body;

  // Failback: the names come home the same way.
  Status synced = pair_->WaitStatus([](const Json& s) { return s["sync"]["state"] == "syncing"; },
                                    90s, "region-a to stream from region-b");
  ASSERT_TRUE(synced.ok()) << synced.ToString();
  CliRun back = pair_->Cli({"dr", "failback"});
  ASSERT_EQ(back.exit_code, 0) << back.output << pair_->Logs();
  EXPECT_EQ(Dig(api), a);
  EXPECT_EQ(Dig(exec), a);
  CliRun ev = pair_->Cli({"dr", "events", "--limit", "200"});
  EXPECT_NE(ev.output.find("pointing every host name of the pair at region-b"), std::string::npos)
      << ev.output;
  EXPECT_NE(ev.output.find("pointing every host name of the pair at region-a"), std::string::npos)
      << ev.output;
}

TEST_F(DnsTest, ADeletedDeploymentsNamesGo) {
  Start();
  const std::string ns = CreateDeployment("fleeting");
  const std::string api = ns + "." + kZone;
  ASSERT_EQ(DigUntil(api, pair_->address("region-a")), pair_->address("region-a"));
  HttpReply del = Http(pair_->region_url("region-a"), "DELETE", "/api/v1/deployments/fleeting");
  ASSERT_EQ(del.status / 100, 2) << del.body;
  EXPECT_EQ(DigUntil(api, ""), "");
  EXPECT_EQ(Dig(ns + "-exec." + kZone), "");
}

TEST_F(DnsTest, AKilledDnsServerIsRestartedWithTheRecordsOfTheActiveRegion) {
  Start();
  const std::string ns = CreateDeployment("sturdy");
  const std::string api = ns + "." + kZone;
  ASSERT_EQ(DigUntil(api, pair_->address("region-a")), pair_->address("region-a"));
  CliRun f = pair_->Cli({"dr", "failover"});
  ASSERT_EQ(f.exit_code, 0) << f.output << pair_->Logs();

  std::vector<pid_t> knots = ServerPids("knotd", pair_->dns_dir());
  ASSERT_EQ(knots.size(), 1u);
  ASSERT_EQ(kill(knots[0], SIGKILL), 0);
  // The control plane sees it gone and starts it again, its zone rebuilt from its own state.
  std::vector<pid_t> now;
  for (int i = 0; i < 200; ++i) {
    now = ServerPids("knotd", pair_->dns_dir());
    if (now.size() == 1 && now[0] != knots[0]) break;
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_EQ(now.size(), 1u) << pair_->Log("control");
  EXPECT_NE(now[0], knots[0]);
  EXPECT_EQ(DigUntil(api, pair_->address("region-b"), 10s), pair_->address("region-b"));
  EXPECT_EQ(Dig(ns + "-exec." + kZone), pair_->address("region-b"));
  EXPECT_TRUE(EventSeen("dns_restarted")) << pair_->Log("control");
}

// The control plane dies at the publishing_dns step (after the promotion, before the names
// moved): restarted, it finishes the operation, and its DNS server answers with the new region.
TEST_F(DnsTest, AControlPlaneKilledBeforeTheNamesMovedFinishesTheJobWhenRestarted) {
  Start();
  const std::string ns = CreateDeployment("resumed");
  ASSERT_EQ(DigUntil(ns + "." + kZone, pair_->address("region-a")), pair_->address("region-a"));
  Status stopped = pair_->FailoverStoppingAt("publishing_dns");
  ASSERT_TRUE(stopped.ok()) << stopped.ToString() << pair_->Logs();
  Status done = pair_->WaitStatus(
      [](const Json& s) {
        return s["operation"].is_null() && s["active"] == "region-b" && s["dns"]["current"] == true;
      },
      60s, "the failover to finish after the restart");
  ASSERT_TRUE(done.ok()) << done.ToString();
  EXPECT_EQ(Dig(ns + "." + kZone), pair_->address("region-b"));
  EXPECT_EQ(Dig(ns + "-exec." + kZone), pair_->address("region-b"));
  Json ops = Body(Http(pair_->control_url(), "GET", "/api/v1/dr/operations"));
  EXPECT_EQ(ops["operations"][0]["state"], "succeeded") << ops.dump(2);
}

TEST_F(DnsTest, ACutOffOldPrimaryNeverAnswersByNameAfterAForcedFailover) {
  Start();
  const std::string ns = CreateDeployment("fenced");
  ASSERT_EQ(DigUntil(ns + "." + kZone, pair_->address("region-a")), pair_->address("region-a"));
  // region-a loses the control plane and region-b, but the test still reaches it.
  ASSERT_TRUE(pair_->Cut("region-a", "control").ok());
  ASSERT_TRUE(pair_->Cut("region-a", "region-b").ok());
  CliRun f = ForcedFailover();
  ASSERT_EQ(f.exit_code, 0) << f.output << pair_->Logs();
  EXPECT_EQ(Dig(ns + "." + kZone), pair_->address("region-b"));
  // Its lease ran out before region-b was promoted: by name it answers 421 or 503, never data.
  for (const char* method : {"GET", "POST"}) {
    HttpReply r =
        ByName("region-a", ns, method, "/api/v2/variables",
               std::string(method) == "POST" ? Json{{"key", "k"}, {"value", "v"}}.dump() : "");
    EXPECT_TRUE(r.status == 421 || r.status == 503) << method << " " << r.status << " " << r.body;
    EXPECT_FALSE(Body(r).value("detail", "").empty()) << r.body;
  }
  // Healed, it sees the higher epoch, stops acting, and answers 421 naming region-b.
  pair_->Heal();
  Status fenced = pair_->WaitStatus(
      [](const Json& s) {
        return s["regions"][0].value("role", "") != "active" &&
               s["regions"][0].value("reachable", false);
      },
      60s, "region-a to stop acting as the primary");
  ASSERT_TRUE(fenced.ok()) << fenced.ToString();
  HttpReply r = ByName("region-a", ns, "GET", "/api/v2/variables");
  EXPECT_EQ(r.status, 421) << r.body;
  EXPECT_NE(Body(r).value("detail", "").find("region-b"), std::string::npos) << r.body;
}

TEST_F(DnsTest, AnUpdateWithTheWrongKeyIsRefusedReportedAndRetried) {
  PairProcess::Options o;
  o.dns_external = true;
  o.dns_tsig_secret = NewSecretKeyBase64();  // the control plane's key; the server has another
  Create(o);
  ASSERT_NE(pair_, nullptr);
  // The DNS server is the operator's: Knot with a key of its own.
  dns::KnotOptions ko;
  ko.state_dir = pair_->dir() + "/external-dns";
  ko.listen = dns::Server{pair_->dns_address(), pair_->dns_port()};
  ko.zone = kZone;
  ko.key = dns::TsigKey{"tandem-update", "hmac-sha256", NewSecretKeyBase64()};
  ko.run_as = RunAsUser();
  auto knot = dns::KnotServer::Create(ko);
  ASSERT_TRUE(knot.ok()) << knot.status().ToString();
  ASSERT_TRUE((*knot)->Start({}, 10s).ok());
  ASSERT_TRUE(pair_->StartAll().ok()) << pair_->Logs();

  const std::string ns = CreateDeployment("refused");
  Status reported = pair_->WaitStatus(
      [](const Json& s) {
        return s["dns"].is_object() &&
               s["dns"]["error"].get<std::string>().find("TSIG") != std::string::npos;
      },
      20s, "the refused DNS update to be reported");
  ASSERT_TRUE(reported.ok()) << reported.ToString();
  Json st = pair_->DrStatus();
  EXPECT_EQ(st["ready_for_failover"], false) << st.dump(2);
  EXPECT_EQ(Dig(ns + "." + kZone), "");  // nothing was changed

  // A failover still happens (the regions do not depend on DNS) and says the names lag.
  CliRun f = pair_->Cli({"dr", "failover"});
  ASSERT_EQ(f.exit_code, 0) << f.output << pair_->Logs();
  EXPECT_TRUE(EventSeen("the DNS update failed"));
  EXPECT_TRUE(EventSeen("dns_error"));
  EXPECT_TRUE(EventSeen("the host names still point at region-a"));

  // The operator gives the server the pair's key: the control plane's retries go through.
  ASSERT_TRUE((*knot)->Stop().ok());
  ko.key.secret = o.dns_tsig_secret;
  auto fixed = dns::KnotServer::Create(ko);
  ASSERT_TRUE(fixed.ok());
  ASSERT_TRUE((*fixed)->Start({}, 10s).ok());
  EXPECT_EQ(DigUntil(ns + "." + kZone, pair_->address("region-b"), 30s), pair_->address("region-b"))
      << pair_->Log("control");
  Status clean = pair_->WaitStatus(
      [](const Json& s) { return s["dns"]["error"] == "" && s["dns"]["current"] == true; }, 20s,
      "the DNS error to clear");
  EXPECT_TRUE(clean.ok()) << clean.ToString();
}

// A worker started outside both regions, knowing only a deployment's Execution API host name
// and the pair's DNS server, keeps claiming and running tasks through a forced failover and a
// failback: no restart, no change to its configuration, no try number used twice.
TEST_F(DnsTest, ARemoteWorkerRidesThroughAForcedFailoverAndAFailbackByName) {
  PairProcess::Options o;
  o.local_workers = 0;  // the remote worker is the only one
  Start(o);
  const std::string ns = CreateDeployment("remote");
  const std::string id = Body(Http(pair_->region_url("region-a"), "GET",
                                   "/api/v1/deployments/remote"))
                             .value("id", "");
  ASSERT_FALSE(id.empty());
  const std::string exec = ns + "-exec." + kZone;
  ASSERT_EQ(DigUntil(exec, pair_->address("region-a")), pair_->address("region-a"));
  const std::string root = "/deployments/" + id + "/api/v2";
  const std::string bundle = R"(
slow:
  schedule: null
  tasks:
    sleeper:
      operator: bash
      retries: 2
      retry_delay: 1s
      bash_command: |
        if [ "$AIRFLOW_CTX_TRY_NUMBER" = 1 ]; then sleep 300; fi
        echo "try $AIRFLOW_CTX_TRY_NUMBER done"
quick:
  schedule: null
  tasks:
    hello:
      operator: bash
      bash_command: echo hello
)";
  auto on_active = [&](const std::string& method, const std::string& path, const Json& body) {
    return Http(pair_->region_url(Active()), method, path, body.is_null() ? "" : body.dump());
  };
  ASSERT_EQ(on_active("POST", "/api/v1/deployments/" + id + "/bundle",
                      {{"files", {{"dags.yaml", bundle}}}})
                .status,
            200);
  for (const char* dag : {"slow", "quick"}) {
    ASSERT_EQ(on_active("PATCH", root + "/dags/" + dag, {{"is_paused", false}}).status, 200);
  }

  // The worker: its own process, its own token file, a host name and the DNS server.
  const std::string credential = MakeWorkerCredential(pair_->region_url(Active()));
  ASSERT_FALSE(credential.empty());
  ASSERT_TRUE(WriteFileAtomic(pair_->dir() + "/worker.token", credential, 0600).ok());
  SpawnOptions so;
  so.argv = {TandemBin(), "worker", "--api",
             "http://" + exec + ":" + std::to_string(pair_->http_port("region-a")), "--dns",
             pair_->dns_address() + ":" + std::to_string(pair_->dns_port()), "--token-file",
             pair_->dir() + "/worker.token", "--slots", "8", "--hostname", "remote-1"};
  so.output_path = pair_->dir() + "/remote-worker.log";
  so.death_signal = SIGKILL;
  auto spawned = Child::Spawn(so);
  ASSERT_TRUE(spawned.ok()) << spawned.status().ToString();
  struct Stopper {
    ChildPtr child;
    ~Stopper() {
      if (child) child->Stop(SIGTERM, std::chrono::milliseconds(15000));
    }
  } worker{std::move(spawned).value()};
  auto worker_log = [&] {
    auto l = ReadFile(pair_->dir() + "/remote-worker.log");
    return l.ok() ? *l : std::string();
  };

  // Runs `quick` on whichever region is active and waits for the remote worker to run it.
  auto run_quick = [&](const std::string& where) {
    HttpReply t = on_active("POST", root + "/dags/quick/dagRuns",
                            {{"logical_date", nullptr}, {"conf", Json::object()}});
    ASSERT_EQ(t.status, 200) << t.body;
    const std::string ti =
        root + "/dags/quick/dagRuns/" + Body(t)["dag_run_id"].get<std::string>() +
        "/taskInstances/hello";
    Status done = pair_->WaitStatus(
        [&](const Json&) {
          Json j = Body(on_active("GET", ti, nullptr));
          return j.value("state", Json()).is_string() && j["state"] == "success";
        },
        90s, "quick to run on " + where);
    ASSERT_TRUE(done.ok()) << done.ToString() << "\n" << worker_log();
    EXPECT_EQ(Body(on_active("GET", ti, nullptr)).value("hostname", ""), "remote-1");
  };
  run_quick("region-a");

  HttpReply t = on_active("POST", root + "/dags/slow/dagRuns",
                          {{"logical_date", nullptr}, {"conf", Json::object()}});
  ASSERT_EQ(t.status, 200) << t.body;
  const std::string sleeper =
      root + "/dags/slow/dagRuns/" + Body(t)["dag_run_id"].get<std::string>() +
      "/taskInstances/sleeper";
  Status running = pair_->WaitStatus(
      [&](const Json& s) {
        Json j = Body(on_active("GET", sleeper, nullptr));
        return j.value("state", Json()) == "running" && s["lag"]["bytes"] == 0;
      },
      60s, "try 1 to run on the remote worker, replicated");
  ASSERT_TRUE(running.ok()) << running.ToString() << "\n" << worker_log();

  // region-a is lost whole; the control plane fails over by force.
  pair_->KillRegion("region-a", SIGKILL);
  CliRun f = ForcedFailover();
  ASSERT_EQ(f.exit_code, 0) << f.output << pair_->Logs();
  EXPECT_EQ(Dig(exec), pair_->address("region-b"));
  // Try 1 died with its region (the worker is told to stop it); try 2 runs on the same worker.
  Status retried = pair_->WaitStatus(
      [&](const Json&) {
        Json j = Body(on_active("GET", sleeper, nullptr));
        return j.value("state", Json()) == "success" && j.value("try_number", 0) == 2;
      },
      120s, "try 2 to succeed on the remote worker in region-b");
  ASSERT_TRUE(retried.ok()) << retried.ToString() << "\n" << worker_log();
  EXPECT_EQ(Body(on_active("GET", sleeper, nullptr)).value("hostname", ""), "remote-1");
  run_quick("region-b");

  // The old region returns, rejoins, and the pair fails back; the worker follows again.
  ASSERT_TRUE(pair_->StartRegion("region-a").ok()) << pair_->Logs();
  Status synced = pair_->WaitRejoined(120s);
  ASSERT_TRUE(synced.ok()) << synced.ToString();
  CliRun back = pair_->Cli({"dr", "failback"});
  ASSERT_EQ(back.exit_code, 0) << back.output << pair_->Logs();
  EXPECT_EQ(Dig(exec), pair_->address("region-a"));
  run_quick("region-a again");

  // One process all along, and every try number used once.
  EXPECT_TRUE(ProcessAlive(worker.child->pid()));
  EXPECT_FALSE(worker.child->Poll().has_value()) << worker_log();
  Json tries = Body(on_active("GET", sleeper + "/tries", nullptr));
  std::set<int> numbers;
  for (const Json& x : tries["task_instances"]) {
    EXPECT_TRUE(numbers.insert(x.value("try_number", 0)).second) << tries.dump(2);
  }
  EXPECT_EQ(numbers, (std::set<int>{1, 2})) << tries.dump(2);
}

}  // namespace
}  // namespace tandem::testing
