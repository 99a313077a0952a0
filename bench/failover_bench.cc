// The failover benchmark (#4): a whole region pair on this machine — control plane, two regions,
// their PostgreSQL servers, local workers — with N deployments and M long-running tasks, failed
// over again and again. It prints, per failover and as medians over the runs of one invocation:
//
//   - RTO: from the failure to the moment every deployment's API answers from the new active
//     region (a DAG run triggered there is accepted) and its scheduler starts tasks (that run's
//     task is running or done), reached the way a client reaches it: through the deployment's
//     host name, looked up at the pair's DNS server before every attempt (resolve, then
//     request; an old region answers 421 by name, so only the new one counts). Forced: the failure is the SIGKILL of every process of the
//     primary region, PostgreSQL included, and the control plane detects it by itself
//     (automatic failover), so detection is inside the figure. Planned: the failure is the
//     moment the old primary stopped taking writes (the end of its step-down, from the event
//     log); the drain before it is printed apart, since the platform serves while it drains.
//   - RPO: a client commits a timestamped change (a variable) every 10 ms through the API of
//     whichever region is active and records what was acknowledged; afterwards, the age at the
//     moment of the failure of the oldest acknowledged change that is missing (0 when none is).
//   - the writer's gap: the longest time between two acknowledged writes around the failover.
//
// Each configuration (planned or forced, asynchronous or synchronous) gets its own pair; the
// runs of one configuration fail over back and forth (the old primary rejoins as a replica and
// catches up before the next run). Everything started is stopped by PID at the end, however it
// ends. Not a test: it exits 0 whether or not the targets are met; non-zero only when it could
// not measure.
#include <fmt/core.h>
#include <signal.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/status.h"
#include "dag/timetable.h"
#include "dns/dns.h"
#include "bench/bench_util.h"
#include "harness/pair_harness.h"
#include "pg/conn.h"

namespace tandem::bench {
namespace {

using Steady = std::chrono::steady_clock;
using Wall = std::chrono::system_clock;
using namespace std::chrono_literals;
using testing::Http;
using testing::HttpReply;
using testing::PairProcess;

// The issue's targets.
constexpr double kForcedRtoTarget = 5.0;
constexpr double kPlannedRtoTarget = 2.0;
constexpr double kAsyncRpoTarget = 1.0;

struct Flags {
  int runs = 5;
  int deployments = 80;
  int tasks = 1250;
  std::vector<std::string> modes = {"planned", "forced"};
  std::vector<std::string> replication = {"asynchronous", "synchronous"};
  int workers = 2;
  int slots = 640;
  int health_interval_ms = 250;
  int detection_misses = 8;
  int lease_ms = 3000;
  int lease_renew_ms = 500;
  int lease_margin_ms = 500;
  int drain_seconds = 2;
  int probe_threads = 16;
  // After every task is running again, before the next failover: the new region has started
  // 1,250 processes and the old one has rejoined; a failover in the middle of that measures
  // back-to-back failovers, not a failover of a running pair.
  int settle_seconds = 5;
};

volatile sig_atomic_t g_interrupted = 0;
void OnSignal(int) { g_interrupted = 1; }



// Writes a variable every 10 ms to whichever region the control plane says is active.
class RpoWriter {
 public:
  RpoWriter(PairProcess* pair, std::string deployment, std::string prefix)
      : pair_(pair), deployment_(std::move(deployment)), prefix_(std::move(prefix)) {
    thread_ = std::thread([this] { Run(); });
  }
  ~RpoWriter() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  // Acknowledged writes: key -> wall time of the acknowledgement.
  std::map<std::string, Wall::time_point> acked() {
    std::lock_guard lock(mu_);
    return acked_;
  }
  // The longest time between two acknowledgements.
  double gap() {
    std::lock_guard lock(mu_);
    return Secs(gap_);
  }

 private:
  void Run() {
    std::string url;
    std::optional<Steady::time_point> last_ack;
    auto next = Steady::now();
    for (int i = 0; !stop_; ++i) {
      if (url.empty()) {
        Json s = pair_->DrStatus();
        if (s.is_object()) url = pair_->region_url(s.value("active", "region-a"));
      }
      const std::string key = prefix_ + std::to_string(i);
      HttpReply r = Http(url, "POST", Root(deployment_) + "/variables",
                         Json{{"key", key}, {"value", std::to_string(i)}}.dump());
      if (r.status == 201) {
        const auto now = Steady::now();
        std::lock_guard lock(mu_);
        acked_[key] = Wall::now();
        if (last_ack) gap_ = std::max(gap_, now - *last_ack);
        last_ack = now;
      } else {
        url.clear();
      }
      next += 10ms;
      std::this_thread::sleep_until(std::max(next, Steady::now()));
      if (Steady::now() > next + 100ms) next = Steady::now();
    }
  }
  PairProcess* pair_;
  std::string deployment_, prefix_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::map<std::string, Wall::time_point> acked_;
  Steady::duration gap_{};
  std::thread thread_;
};

struct RunResult {
  double rto = -1, rto_api = -1, rpo = -1, gap = -1, drain = -1, control_rto = -1;
  int missing = 0, acked = 0;
};

class Bench {
 public:
  explicit Bench(Flags f) : f_(std::move(f)) {}

  // One configuration: a fresh pair, set up, then `runs` failovers.
  Status RunConfig(const std::string& mode, const std::string& replication,
                   std::vector<RunResult>* out) {
    PairProcess::Options o;
    o.mode = replication;
    o.automatic_failover = mode == "forced";
    o.health_interval_ms = f_.health_interval_ms;
    o.detection_misses = f_.detection_misses;
    o.lease_ms = f_.lease_ms;
    o.lease_renew_ms = f_.lease_renew_ms;
    o.lease_margin_ms = f_.lease_margin_ms;
    o.drain_timeout_seconds = f_.drain_seconds;
    o.planned_timeout_seconds = f_.drain_seconds + 60;
    o.local_workers = f_.workers;
    o.worker_slots = f_.slots;
    // Clients reach the deployments by host name: each region on its own address, one port.
    o.own_addresses = true;
    o.dns = true;
    ASSIGN_OR_RETURN(pair_, PairProcess::Create(o));
    RETURN_IF_ERROR(pair_->StartAll());
    RETURN_IF_ERROR(SetUp());
    for (int run = 1; run <= f_.runs && !g_interrupted; ++run) {
      RETURN_IF_ERROR(WaitReady());
      auto r = mode == "forced" ? Forced(run) : Planned(run);
      if (!r.ok()) return r.status().WithContext("run " + std::to_string(run));
      fmt::print("  run {}: RTO {:.2f} s (API {:.2f} s), RPO {:.3f} s ({} of {} acknowledged "
                 "writes missing), writer's gap {:.2f} s{}\n",
                 run, r->rto, r->rto_api, r->rpo, r->missing, r->acked, r->gap,
                 r->drain >= 0 ? fmt::format(", drain {:.2f} s", r->drain) : "");
      std::fflush(stdout);
      out->push_back(*r);
    }
    pair_.reset();
    return Status::Ok();
  }

 private:
  std::string Active() { return Str(pair_->DrStatus(), "active"); }

  Status SetUp() {
    const std::string url = pair_->region_url("region-a");
    const int per = (f_.tasks + f_.deployments - 1) / f_.deployments;
    deployments_.clear();
    hosts_.clear();
    for (int d = 0; d < f_.deployments; ++d) {
      HoldDeployment h;
      h.name = fmt::format("bench-{:03d}", d);
      h.worker_slots = per + 4;
      h.tasks = std::max(0, std::min(per, f_.tasks - d * per));
      h.more_dags = "probe:\n  schedule: null\n  tasks:\n    ping:\n      operator: bash\n"
                    "      bash_command: echo ping\n";
      h.unpause = {"hold", "probe"};
      ASSIGN_OR_RETURN(std::string id, SetUpHoldDeployment(url, h));
      deployments_.push_back(id);
      const std::string ns = Str(Body(Http(url, "GET", "/api/v1/deployments/" + id)), "namespace");
      if (ns.empty()) return Internal("deployment " + id + " has no namespace");
      hosts_.push_back(ns + ".tandem.test");
    }
    fmt::print("  {} deployments set up, {} sleepers triggered\n", f_.deployments, f_.tasks);
    return Status::Ok();
  }

  Result<int64_t> RunningTasks(const std::string& region) {
    ASSIGN_OR_RETURN(pg::ConnPtr c, pg::Conn::Connect(pair_->Dsn(region)));
    ASSIGN_OR_RETURN(pg::Rows r, c->Exec("SELECT count(*) FROM task_instances WHERE state = "
                                         "'running' AND task_id LIKE 's%'"));
    return r.Int(0, 0);
  }

  // The pair is syncing, with no lag, and the sleepers all run in the active region.
  Status WaitReady() {
    const auto deadline = Steady::now() + 300s;
    while (Steady::now() < deadline && !g_interrupted) {
      Json s = pair_->DrStatus();
      if (s.is_object() && s["sync"]["state"] == "syncing" && s["operation"].is_null()) {
        auto n = RunningTasks(Str(s, "active"));
        if (n.ok() && *n >= f_.tasks) {
          std::this_thread::sleep_for(std::chrono::seconds(f_.settle_seconds));
          return Status::Ok();
        }
      }
      std::this_thread::sleep_for(200ms);
    }
    return Unavailable("the pair did not get back to syncing with every task running" +
                       pair_->Logs());
  }

  // A request to deployment `i` by its host name: looked up at the pair's DNS server first
  // (no cache: resolve, then request), sent to that address with the name as Host.
  HttpReply ByName(size_t i, const std::string& method, const std::string& path,
                   const std::string& body = "") {
    const dns::Server server{pair_->dns_address(), pair_->dns_port()};
    auto a = dns::LookUp(server, hosts_[i], 1s);
    if (!a.ok()) return {};
    const std::string port = std::to_string(pair_->http_port("region-a"));
    return Http("http://" + a->addresses.front() + ":" + port, method, path, body,
                {{"Host", hosts_[i] + ":" + port}});
  }

  // Every deployment: trigger a probe run until one is accepted through its host name (the new
  // active region's API answers), then wait until its task runs (its scheduler starts tasks).
  // Seconds since `from`, the worst. The names decide where it lands: a region that is not
  // active answers 421 by name, so only the new active region counts.
  std::pair<double, double> Probe(Steady::time_point from) {
    std::atomic<size_t> next{0};
    std::mutex mu;
    double worst_api = 0, worst = 0;
    auto work = [&] {
      for (size_t i; (i = next++) < deployments_.size();) {
        std::string run;
        while (!g_interrupted) {
          HttpReply t = ByName(i, "POST", "/api/v2/dags/probe/dagRuns",
                               Json{{"logical_date", nullptr}, {"conf", Json::object()}}.dump());
          if (t.status == 200) {
            run = Str(Body(t), "dag_run_id");
            break;
          }
          std::this_thread::sleep_for(20ms);
        }
        const double api = Secs(Steady::now() - from);
        bool told = false;
        const std::string& id = deployments_[i];
        while (!g_interrupted) {
          Json ti =
              Body(ByName(i, "GET", "/api/v2/dags/probe/dagRuns/" + run + "/taskInstances/ping"));
          std::string state = Str(ti, "state");
          if (state == "running" || state == "success") break;
          if (!told && Secs(Steady::now() - from) > 30) {
            // A stalled probe says what it is waiting for, once.
            told = true;
            fmt::print(stderr, "  probe of {} still {} after 30 s: {}\n", id, state, ti.dump());
          }
          std::this_thread::sleep_for(20ms);
        }
        const double all = Secs(Steady::now() - from);
        std::lock_guard lock(mu);
        worst_api = std::max(worst_api, api);
        worst = std::max(worst, all);
      }
    };
    std::vector<std::thread> threads;
    threads.reserve(f_.probe_threads);
    for (int t = 0; t < f_.probe_threads; ++t) threads.emplace_back(work);
    for (auto& t : threads) t.join();
    return {worst_api, worst};
  }

  // RPO: the age at the failure of the oldest acknowledged write missing on `region`.
  void Rpo(RpoWriter& w, const std::string& prefix, const std::string& region,
           Wall::time_point failed_at, RunResult* r) {
    std::set<std::string> present;
    const std::string url = pair_->region_url(region);
    for (int offset = 0;; offset += 100) {
      Json v = Body(Http(url, "GET",
                         Root(deployments_[0]) + "/variables?variable_key_pattern=" + prefix +
                             "%25&limit=100&offset=" + std::to_string(offset)));
      if (!v.is_object() || v["variables"].empty()) break;
      for (const Json& x : v["variables"]) present.insert(Str(x, "key"));
    }
    auto acked = w.acked();
    r->acked = static_cast<int>(acked.size());
    std::optional<Wall::time_point> oldest;
    for (const auto& [key, at] : acked) {
      if (present.count(key)) continue;
      ++r->missing;
      if (!oldest || at < *oldest) oldest = at;
    }
    r->rpo = oldest ? std::max(0.0, std::chrono::duration<double>(failed_at - *oldest).count())
                    : 0.0;
    r->gap = w.gap();
  }

  Result<RunResult> Forced(int run) {
    RunResult r;
    const std::string from = Active();
    const std::string to = from == "region-a" ? "region-b" : "region-a";
    const std::string prefix = fmt::format("rpo-{}-", run);
    RpoWriter w(pair_.get(), deployments_[0], prefix);
    std::this_thread::sleep_for(1s);
    const Wall::time_point failed_wall = Wall::now();
    const Steady::time_point failed = Steady::now();
    pair_->KillRegion(from, SIGKILL);
    auto [api, all] = Probe(failed);
    r.rto_api = api;
    r.rto = all;
    std::this_thread::sleep_for(500ms);
    w.Stop();
    Rpo(w, prefix, to, failed_wall, &r);
    RETURN_IF_ERROR(pair_->StartRegion(from));  // it rejoins as a replica
    return r;
  }

  Result<RunResult> Planned(int run) {
    RunResult r;
    const std::string from = Active();
    const std::string to = from == "region-a" ? "region-b" : "region-a";
    const std::string prefix = fmt::format("rpo-{}-", run);
    RpoWriter w(pair_.get(), deployments_[0], prefix);
    std::this_thread::sleep_for(1s);
    const Steady::time_point asked = Steady::now();
    const Wall::time_point asked_wall = Wall::now();
    HttpReply f = Http(pair_->control_url(), "POST", "/api/v1/dr/failover",
                       R"({"mode":"planned"})");
    if (f.status != 202) return Internal("failover: " + f.body);
    const int64_t op = Body(f)["operation"]["id"];
    // When the old primary stopped taking writes: the end of its step-down. Until then it is
    // still the active region, and by name it takes the probe's triggers (while it drains), so
    // the probe starts once the step-down is over.
    std::optional<Wall::time_point> stopped;
    Json events;
    for (auto deadline = Steady::now() + 120s; !stopped && Steady::now() < deadline;) {
      events = Body(Http(pair_->control_url(), "GET", "/api/v1/dr/events?limit=200"));
      for (const Json& e : events["events"]) {
        if (e.value("operation", Json()) == op &&
            Str(e, "message").rfind("waiting for " + to + " to replay", 0) == 0) {
          // "2026-11-25T22:32:03.876Z": seconds by ParseTime, then the milliseconds.
          const std::string at = Str(e, "at");
          auto t = dag::ParseTime(at.substr(0, 19) + "Z");
          if (t.ok() && at.size() >= 23) {
            stopped =
                Wall::time_point(*t) + std::chrono::milliseconds(std::stoi(at.substr(20, 3)));
          }
        }
      }
      if (!stopped) std::this_thread::sleep_for(20ms);
    }
    if (!stopped) return Internal("no catch-up step in the events: " + events.dump());
    auto [api, all] = Probe(asked);
    std::this_thread::sleep_for(500ms);
    w.Stop();
    const double drain = std::chrono::duration<double>(*stopped - asked_wall).count();
    r.drain = drain;
    r.rto_api = api - drain;
    r.rto = all - drain;
    Rpo(w, prefix, to, *stopped, &r);
    Json o = Body(Http(pair_->control_url(), "GET", "/api/v1/dr/operations/" + std::to_string(op)));
    if (o.value("state", "") != "succeeded") return Internal("planned failover: " + o.dump());
    return r;
  }

  Flags f_;
  std::unique_ptr<PairProcess> pair_;
  std::vector<std::string> deployments_;
  std::vector<std::string> hosts_;  // each deployment's API host name
};

int Main(int argc, char** argv) {
  Flags f;
  CLI::App app{"The failover benchmark: RTO and RPO of planned and forced failovers"};
  app.add_option("--runs", f.runs, "Failovers per configuration (medians over them)");
  app.add_option("--deployments", f.deployments, "Deployments");
  app.add_option("--tasks", f.tasks, "Long-running tasks in all");
  app.add_option("--modes", f.modes, "planned and/or forced");
  app.add_option("--replication", f.replication, "asynchronous and/or synchronous");
  app.add_option("--workers", f.workers, "Local workers per region");
  app.add_option("--slots", f.slots, "Slots per local worker");
  app.add_option("--health-interval-ms", f.health_interval_ms, "Control plane health checks");
  app.add_option("--detection-misses", f.detection_misses, "Missed checks that mean lost");
  app.add_option("--lease-ms", f.lease_ms, "Lease length");
  app.add_option("--lease-renew-ms", f.lease_renew_ms, "Lease renewal interval");
  app.add_option("--lease-margin-ms", f.lease_margin_ms, "Holder's safety margin");
  app.add_option("--settle-seconds", f.settle_seconds,
                 "Wait after every task runs again, before the next failover");
  app.add_option("--drain-seconds", f.drain_seconds, "Planned failover drain timeout");
  CLI11_PARSE(app, argc, argv);
  SetUpProcess(OnSignal);

  fmt::print("failover bench: {} deployments, {} running tasks, {} runs per configuration\n"
             "settings: health checks every {} ms, lost after {} misses ({:.2f} s), lease {} ms "
             "renewed every {} ms (margin {} ms), drain {} s; {} workers x {} slots per region; "
             "{} s settle after every task runs again\n",
             f.deployments, f.tasks, f.runs, f.health_interval_ms, f.detection_misses,
             f.health_interval_ms * f.detection_misses / 1000.0, f.lease_ms, f.lease_renew_ms,
             f.lease_margin_ms, f.drain_seconds, f.workers, f.slots, f.settle_seconds);
  std::vector<std::string> summary;
  for (const std::string& replication : f.replication) {
    for (const std::string& mode : f.modes) {
      if (g_interrupted) break;
      fmt::print("\n{} failover, {} replication\n", mode, replication);
      std::fflush(stdout);
      std::vector<RunResult> runs;
      Bench b(f);
      Status s = b.RunConfig(mode, replication, &runs);
      if (!s.ok()) {
        fmt::print(stderr, "error: {}\n", s.ToString());
        return 1;
      }
      std::vector<double> rto, api, rpo, gap;
      for (const RunResult& r : runs) {
        rto.push_back(r.rto);
        api.push_back(r.rto_api);
        rpo.push_back(r.rpo);
        gap.push_back(r.gap);
      }
      const double target_rto = mode == "forced" ? kForcedRtoTarget : kPlannedRtoTarget;
      const double target_rpo =
          mode == "planned" || replication == "synchronous" ? 0.0 : kAsyncRpoTarget;
      summary.push_back(fmt::format(
          "{:<8} {:<13} RTO median {:5.2f} s (target <= {:.0f} s: {})  API {:5.2f} s  "
          "RPO median {:6.3f} s (target {}: {})  writer's gap {:5.2f} s  [{} runs]",
          mode, replication, Median(rto), target_rto, Median(rto) <= target_rto ? "met" : "MISSED",
          Median(api), Median(rpo), target_rpo == 0 ? "0" : fmt::format("<= {:.0f} s", target_rpo),
          Median(rpo) <= target_rpo ? "met" : "MISSED", Median(gap), runs.size()));
    }
  }
  fmt::print("\nmedians\n");
  for (const std::string& line : summary) fmt::print("  {}\n", line);
  return 0;
}

}  // namespace
}  // namespace tandem::bench

int main(int argc, char** argv) { return tandem::bench::Main(argc, argv); }
