// The failover benchmark (#4): a whole region pair on this machine — control plane, two regions,
// their PostgreSQL servers, local workers — with N deployments and M long-running tasks, failed
// over again and again. It prints, per failover and as medians over the runs of one invocation:
//
//   - RTO: from the failure to the moment every deployment's API answers from the new active
//     region (a DAG run triggered there is accepted) and its scheduler starts tasks (that run's
//     task is running or done), reached the way a client reaches it: through the deployment's
//     host name, looked up at the pair's DNS server before every attempt (resolve, then
//     request; an old region answers 421 by name, so only the new one counts), on a
//     connection per deployment kept while the name stays on one address, as clients keep
//     theirs (the region serves each connection on a thread of its own). Each deployment
//     is probed on its own (one thread sweeps a few of them), so a deployment whose task waits
//     does not hold back the next one's trigger. Forced: the failure is the SIGKILL
//     of every process of the primary region, PostgreSQL included, and the control plane
//     detects it by itself (automatic failover), so detection is inside the figure. Planned:
//     the failure is the moment the old primary stopped taking writes (the end of its
//     step-down, from the event log); the drain before it is printed apart, since the
//     platform serves while it drains.
//   - where the time went, per failover: when each step of the control plane began (its
//     events), the promotion as the promoted region logged it (PostgreSQL's part, the tries
//     reconciled), each deployment's API and task times (first, median, last), a probe task's
//     time from its run's creation to scheduled, queued and claimed (the new region's
//     database), and when the old region's long tasks all ran again.
//   - RPO: a client commits a timestamped change (a variable) every 10 ms through the API of
//     whichever region is active (on one kept connection) and records what was acknowledged;
//     afterwards, the age at the moment of the failure of the oldest acknowledged change that
//     is missing (0 when none is), and how many missing changes were acknowledged after the
//     failure (never allowed).
//   - the writer's gap: the longest time between two acknowledged writes around the failover.
//
// A target is "met" only when every run asked for was measured, and an RPO target of zero only
// when no acknowledged write is missing at all. With --planned-limit / --forced-limit (the
// test suite's guard) it exits 2 when a median RTO is above its limit or an RPO is missed.
//
// Each configuration (planned or forced, asynchronous or synchronous) gets its own pair; the
// runs of one configuration fail over back and forth (the old primary rejoins as a replica and
// catches up before the next run). Everything started is stopped by PID at the end, however it
// ends. Without the limits it exits 0 whether or not the targets are met, and 1 when it could
// not measure (or was interrupted).
#include <fmt/core.h>
#include <signal.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/status.h"
#include "bench/bench_util.h"
#include "bench/verdict.h"
#include "dag/timetable.h"
#include "dns/dns.h"
#include "harness/pair_harness.h"
#include "pg/conn.h"

namespace tandem::bench {
namespace {

using Steady = std::chrono::steady_clock;
using Wall = std::chrono::system_clock;
using namespace std::chrono_literals;
using testing::Http;
using testing::HttpReply;
using testing::HttpSession;
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
  // Enough for every task a failover runs at once in the new region: the old region's 1,250
  // restarted and the probes' 80 (2 x 640 left 50 probes waiting for a slot to free, 8-13 s).
  int slots = 700;
  int health_interval_ms = 250;
  int detection_misses = 8;
  int lease_ms = 3000;
  int lease_renew_ms = 500;
  int lease_margin_ms = 500;
  int drain_seconds = 2;
  bool tls = false;  // every part of the pair serves HTTPS (a CA of its own), clients verify it
  // One prober per deployment by default, so no deployment's wait delays another's figure.
  int probe_threads = 80;
  // After every task is running again, before the next failover: the new region has started
  // 1,250 processes and the old one has rejoined; a failover in the middle of that measures
  // back-to-back failovers, not a failover of a running pair.
  int settle_seconds = 5;
  // A busier machine: this many threads of the bench spin at full speed (niceness 0) while it
  // runs, taking CPU from the pair as other work on a shared machine would.
  int load_threads = 0;
  // The suite's guard: exit 2 when a median RTO is above these (seconds; 0: no limit).
  double planned_limit = 0;
  double forced_limit = 0;
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
    HttpSession session;  // one connection kept, as a real client keeps it
    std::optional<Steady::time_point> last_ack;
    auto next = Steady::now();
    for (int i = 0; !stop_; ++i) {
      if (url.empty()) {
        Json s = pair_->DrStatus();
        if (s.is_object()) url = pair_->region_url(s.value("active", "region-a"));
      }
      const std::string key = prefix_ + std::to_string(i);
      HttpReply r = session.Send(url, "POST", Root(deployment_) + "/variables",
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

// The times of one failover's stages, in seconds from the failure (negative: before it).
struct Stages {
  // From the control plane's events: when each step began, and when the operation ended.
  std::map<std::string, double> steps;
  double finished = NAN;
  // From the promoted region's log: the promotion's whole time, and of it PostgreSQL's promotion,
  // reconciliation (and how many task instances it moved to retry) and taking the lease.
  double promote_s = NAN, pg_promote_s = NAN, reconcile_s = NAN, lease_s = NAN;
  int64_t reconciled = -1;
  double workers_started = NAN;  // its first local worker started, s from the failure
  // From the probe: each deployment's API first accepting a trigger by name, and the triggered
  // task running; and, from the new region's database, where a probe task's time went.
  std::vector<double> api, task;
  int lookup_failures = 0;           // the probe's DNS lookups that failed (each costs up to 1 s)
  std::vector<double> trigger_took;  // how long each accepted trigger request took
  std::string refused;               // the answers of the triggers not accepted, by status
  std::vector<double> decide_ms, queue_ms, claim_ms;  // run queued → scheduled → queued → running
  // The old region's long tasks: how many run again when the probe ended, and when the last
  // of them started in the new region (NAN: not within the wait).
  int64_t retries_at_probe_end = -1;
  double retries_all_running = NAN;
  // A planned failover's old primary rejoining as a replica, beside all of the above: how (the
  // control plane's resync_done event, "by pg_rewind in 1.2 s"), and when it was done.
  std::string rejoined;
  double rejoined_at = NAN;
};

struct RunResult {
  double rto = NAN, rto_api = NAN, rpo = NAN, gap = NAN, drain = NAN;
  int missing = 0, acked = 0;
  // Of the missing writes, those acknowledged after the failure: the region that acknowledged
  // them was the new active one (or a fenced old one that still took writes) — never allowed.
  int lost_after = 0;
  Stages stages;
};

// "2026-11-25T22:32:03.876Z" as a wall time.
std::optional<Wall::time_point> ParseIsoMs(const std::string& at) {
  auto t = dag::ParseTime(at.substr(0, 19) + "Z");
  if (!t.ok() || at.size() < 23) return std::nullopt;
  return Wall::time_point(*t) + std::chrono::milliseconds(std::stoi(at.substr(20, 3)));
}

double Since(Wall::time_point from, Wall::time_point t) {
  return std::chrono::duration<double>(t - from).count();
}

std::string Fixed(double v, int precision = 2) {
  return std::isnan(v) ? "-" : fmt::format("{:.{}f}", v, precision);
}

// The step names of docs/disaster-recovery.md, from the messages their events carry
// (control/failover.cc): the event log has the message, the operation only its latest step.
std::string StepOf(const std::string& message, const std::string& to) {
  auto starts = [&](const std::string& p) { return message.rfind(p, 0) == 0; };
  if (starts("asking ") && message.find(" to step down") != std::string::npos) {
    return "stepping_down";
  }
  if (starts("waiting for " + to + " to replay")) return "catching_up";
  if (starts("the control plane and " + to + " promise epoch")) return "raising_epoch";
  if (starts("waiting ") && message.find("for every lease") != std::string::npos) {
    return "waiting_leases";
  }
  if (starts("promoting ")) return "promoting";
  if (starts("pointing every host name")) return "publishing_dns";
  if (starts("asking ") && message.find(" to rejoin") != std::string::npos) return "rejoining";
  return "";
}

class Bench {
 public:
  explicit Bench(Flags f) : f_(std::move(f)) {}

  // One configuration: a fresh pair, set up, then `runs` failovers. A run that could not be
  // measured to its end (an interrupt) is not added to `out`.
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
    o.tls = f_.tls;
    // Clients reach the deployments by host name: each region on its own address, one port.
    o.own_addresses = true;
    o.dns = true;
    ASSIGN_OR_RETURN(pair_, PairProcess::Create(o));
    RETURN_IF_ERROR(pair_->StartAll());
    RETURN_IF_ERROR(SetUp());
    for (int run = 1; run <= f_.runs && !g_interrupted; ++run) {
      RETURN_IF_ERROR(WaitReady());
      if (g_interrupted) break;
      auto r = mode == "forced" ? Forced(run) : Planned(run);
      if (!r.ok()) return r.status().WithContext("run " + std::to_string(run));
      if (g_interrupted) break;  // the probe stopped halfway: its times are not an RTO
      fmt::print(
          "  run {}: RTO {:.2f} s (API {:.2f} s), RPO {:.3f} s ({} of {} acknowledged "
          "writes missing, {} of them acknowledged after the failure), writer's gap "
          "{:.2f} s{}\n",
          run, r->rto, r->rto_api, r->rpo, r->missing, r->acked, r->lost_after, r->gap,
          std::isnan(r->drain) ? "" : fmt::format(", drain {:.2f} s", r->drain));
      PrintStages(mode, r->stages);
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
      h.more_dags =
          "probe:\n  schedule: null\n  tasks:\n    ping:\n      operator: bash\n"
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

  Result<pg::Rows> Query(const std::string& region, const std::string& sql,
                         const std::vector<pg::Param>& params = {}) {
    ASSIGN_OR_RETURN(pg::ConnPtr c, pg::Conn::Connect(pair_->Dsn(region)));
    return c->Exec(sql, params);
  }

  Result<int64_t> RunningTasks(const std::string& region) {
    ASSIGN_OR_RETURN(pg::Rows r, Query(region,
                                       "SELECT count(*) FROM task_instances WHERE state "
                                       "= 'running' AND task_id LIKE 's%'"));
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
    if (g_interrupted) return Status::Ok();
    return Unavailable("the pair did not get back to syncing with every task running" +
                       pair_->Logs());
  }

  // A request to deployment `i` by its host name: looked up at the pair's DNS server first
  // (no cache: resolve, then request), sent to that address with the name as Host — on
  // `session`'s connection, kept while the name gives the same address, or on a new one.
  HttpReply ByName(size_t i, const std::string& method, const std::string& path,
                   const std::string& body = "", HttpSession* session = nullptr) {
    const dns::Server server{pair_->dns_address(), pair_->dns_port()};
    auto a = dns::LookUp(server, hosts_[i], 1s);
    if (!a.ok()) {
      ++lookup_failures_;
      return {};
    }
    const std::string port = std::to_string(pair_->http_port("region-a"));
    const std::string base = (f_.tls ? "https://" : "http://") + a->addresses.front() + ":" + port;
    const std::vector<std::pair<std::string, std::string>> host = {
        {"Host", hosts_[i] + ":" + port}};
    return session != nullptr ? session->Send(base, method, path, body, host)
                              : Http(base, method, path, body, host);
  }

  // Every deployment, independently: trigger a probe run until one is accepted through its
  // host name (the new active region's API answers), then poll until its task runs (its
  // scheduler starts tasks). The names decide where a request lands: a region that is not
  // active answers 421 by name, so only the new active region counts. Each thread owns every
  // probe_threads-th deployment (by default, one) and sweeps them, so one deployment's wait
  // never holds back another's trigger. Triggers are retried every 20 ms; once one is accepted,
  // its task's state is polled every 250 ms, and the moment it started is its start_date (when
  // a worker claimed it), so the interval adds nothing to the figure while 80 clients polling
  // do not load the region they measure more than clients would. Fills `st->api` and
  // `st->task` with each deployment's seconds since `from` (`from_wall` on the wall clock);
  // false when interrupted.
  bool Probe(Steady::time_point from, Wall::time_point from_wall, Stages* st) {
    lookup_failures_ = 0;
    const size_t n = deployments_.size();
    std::vector<double> api(n, NAN), task(n, NAN);
    std::vector<std::string> runs(n);
    std::mutex mu;
    std::vector<double> accepted_took;              // guarded by mu
    std::map<int, std::pair<int, double>> refused;  // guarded by mu: status -> count, longest
    // A connection per deployment, kept as a client keeps it (the region serves each on a
    // thread of its own), and new when the name moves to the other region.
    std::vector<std::unique_ptr<HttpSession>> sessions;
    sessions.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      sessions.push_back(std::make_unique<HttpSession>());
    }
    std::vector<std::thread> threads;
    const size_t stride = static_cast<size_t>(std::max(1, f_.probe_threads));
    for (size_t t = 0; t < stride && t < n; ++t) {
      threads.emplace_back([&, t] {
        bool told = false;
        while (!g_interrupted) {
          bool pending = false;
          for (size_t i = t; i < n; i += stride) {
            if (!std::isnan(task[i])) continue;
            pending = true;
            if (runs[i].empty()) {
              const auto sent = Steady::now();
              HttpReply r = ByName(i, "POST", "/api/v2/dags/probe/dagRuns",
                                   Json{{"logical_date", nullptr}, {"conf", Json::object()}}.dump(),
                                   sessions[i].get());
              const double took = Secs(Steady::now() - sent);
              std::lock_guard lock(mu);
              if (r.status == 200) {
                runs[i] = Str(Body(r), "dag_run_id");
                api[i] = Secs(Steady::now() - from);
                accepted_took.push_back(took);
              } else {
                // Why a trigger was not accepted, and how long the answer took.
                auto& [count, longest] = refused[r.status];
                ++count;
                longest = std::max(longest, took);
              }
              continue;
            }
            Json ti = Body(ByName(i, "GET",
                                  "/api/v2/dags/probe/dagRuns/" + runs[i] + "/taskInstances/ping",
                                  "", sessions[i].get()));
            const std::string state = Str(ti, "state");
            if (state == "running" || state == "success") {
              const auto started = ParseIsoMs(Str(ti, "start_date"));
              task[i] = started ? Since(from_wall, *started) : Secs(Steady::now() - from);
            } else if (!told && Secs(Steady::now() - from) > 30) {
              // A stalled probe says what it is waiting for, once.
              told = true;
              fmt::print(stderr, "  probe of {} still {} after 30 s: {}\n", deployments_[i], state,
                         ti.dump());
            }
          }
          if (!pending) return;
          bool triggered = true;
          for (size_t i = t; i < n; i += stride) triggered = triggered && !runs[i].empty();
          std::this_thread::sleep_for(triggered ? 250ms : 20ms);
        }
      });
    }
    for (auto& th : threads) th.join();
    if (g_interrupted) return false;
    st->api = api;
    st->task = task;
    st->lookup_failures = lookup_failures_;
    st->trigger_took = accepted_took;
    for (const auto& [status, what] : refused) {
      st->refused += fmt::format("{}{} x{} (longest {:.2f} s)", st->refused.empty() ? "" : ", ",
                                 status == 0 ? std::string("no answer") : std::to_string(status),
                                 what.first, what.second);
    }
    return true;
  }

  // What the probe's own tasks spent where, on the new region's clock: its runs created after
  // `failed_at`.
  void ProbeBreakdown(const std::string& region, Wall::time_point failed_at, Stages* st) {
    const double at = std::chrono::duration<double>(failed_at.time_since_epoch()).count();
    auto r = Query(region,
                   "SELECT extract(epoch FROM ti.scheduled_when - r.queued_at) * 1000, "
                   "extract(epoch FROM ti.queued_when - ti.scheduled_when) * 1000, "
                   "extract(epoch FROM ti.start_date - ti.queued_when) * 1000 "
                   "FROM task_instances ti JOIN dag_runs r ON r.id = ti.run_pk "
                   "WHERE r.dag_id = 'probe' AND r.queued_at >= to_timestamp($1) AND "
                   "ti.start_date IS NOT NULL",
                   {fmt::format("{:.3f}", at)});
    if (!r.ok()) return;
    for (int i = 0; i < r->size(); ++i) {
      st->decide_ms.push_back(std::stod(r->Text(i, 0)));
      st->queue_ms.push_back(std::stod(r->Text(i, 1)));
      st->claim_ms.push_back(std::stod(r->Text(i, 2)));
    }
  }

  // The old region's long tasks in the new one: how many run when the probe ended, then (up to
  // 60 s) when the last of them started.
  // Waits up to 120 s for `region` to have rejoined as a replica since `failed_at`.
  void Rejoined(const std::string& region, Wall::time_point failed_at, Stages* st) {
    for (auto deadline = Steady::now() + 120s; Steady::now() < deadline && !g_interrupted;) {
      Json events = Body(Http(pair_->control_url(), "GET", "/api/v1/dr/events?limit=200"));
      for (const Json& e : events["events"]) {
        auto t = ParseIsoMs(Str(e, "at"));
        if (Str(e, "kind") != "resync_done" || !t || *t < failed_at) continue;
        if (Str(e, "region") != region) continue;
        const std::string m =
            Str(e, "message");  // "rejoined region-a by base_backup in 8.7 s; ..."
        const size_t by = m.find(" by ");
        st->rejoined = by == std::string::npos ? m : m.substr(by + 1, m.find(';', by) - by - 1);
        st->rejoined_at = Since(failed_at, *t);
        return;
      }
      std::this_thread::sleep_for(500ms);
    }
  }

  void Retries(const std::string& region, Wall::time_point failed_at, Stages* st) {
    auto n = RunningTasks(region);
    if (n.ok()) st->retries_at_probe_end = *n;
    const auto deadline = Steady::now() + 60s;
    while (Steady::now() < deadline && !g_interrupted) {
      n = RunningTasks(region);
      if (n.ok() && *n >= f_.tasks) break;
      std::this_thread::sleep_for(100ms);
    }
    if (!n.ok() || *n < f_.tasks) return;
    auto r = Query(region,
                   "SELECT extract(epoch FROM max(start_date)) FROM task_instances WHERE state = "
                   "'running' AND task_id LIKE 's%'");
    if (!r.ok() || r->IsNull(0, 0)) return;
    st->retries_all_running = std::stod(r->Text(0, 0)) -
                              std::chrono::duration<double>(failed_at.time_since_epoch()).count();
  }

  // The control plane's steps of operation `op` and the promoted region's own account.
  void Steps(int64_t op, const std::string& to, Wall::time_point failed_at, Stages* st) {
    Json events = Body(Http(pair_->control_url(), "GET", "/api/v1/dr/events?limit=1000"));
    if (events.is_object()) {
      for (const Json& e : events["events"]) {
        if (e.value("operation", Json()) != op) continue;
        const std::string step = StepOf(Str(e, "message"), to);
        auto t = ParseIsoMs(Str(e, "at"));
        if (step.empty() || !t) continue;
        // Newest first: the earliest event of a step (a retried DNS update records more) wins.
        st->steps[step] = Since(failed_at, *t);
      }
      for (const Json& e : events["events"]) {
        if (Str(e, "kind") != "automatic_failover") continue;
        auto t = ParseIsoMs(Str(e, "at"));
        if (t && *t >= failed_at && Since(failed_at, *t) < 60) {
          st->steps["detected"] = Since(failed_at, *t);
        }
      }
    }
    Json o = Body(Http(pair_->control_url(), "GET", "/api/v1/dr/operations/" + std::to_string(op)));
    if (auto t = ParseIsoMs(Str(o, "finished_at"))) st->finished = Since(failed_at, *t);
    // "promoted at epoch 3 in 0.61 s (PostgreSQL 0.20 s); 1250 task instances reconciled in
    // 0.21 s; the lease taken in 0.05 s"
    const std::string log = pair_->Log(to);
    const std::string needle =
        "promoted at epoch " + std::to_string(o.value("epoch_to", int64_t{0})) + " in ";
    if (size_t at = log.rfind(needle); at != std::string::npos) {
      double total = 0, pg = 0, reconcile = 0, lease = 0;
      long long reconciled = 0;
      const int n = sscanf(log.c_str() + at + needle.size(),
                           "%lf s (PostgreSQL %lf s); %lld task instances reconciled in %lf s; "
                           "the lease taken in %lf s",
                           &total, &pg, &reconciled, &reconcile, &lease);
      if (n >= 3) {
        st->promote_s = total;
        st->pg_promote_s = pg;
        st->reconciled = reconciled;
      }
      if (n == 5) {
        st->reconcile_s = reconcile;
        st->lease_s = lease;
      }
      // "2026-12-08T05:06:15.749 info [region-b] local worker 0 started (pid 31463, ...)"
      if (size_t w = log.find("] local worker ", at); w != std::string::npos) {
        const size_t line = log.rfind('\n', w);
        const size_t from = line == std::string::npos ? 0 : line + 1;
        if (auto t = ParseIsoMs(log.substr(from, 23))) st->workers_started = Since(failed_at, *t);
      }
    }
  }

  void PrintStages(const std::string& mode, const Stages& st) {
    std::string line = "    stages (s from the failure):";
    auto step = [&](const char* name, const char* label) {
      auto it = st.steps.find(name);
      if (it != st.steps.end()) line += fmt::format(" {} {:+.2f},", label, it->second);
    };
    if (mode == "planned") step("stepping_down", "step-down");
    step("detected", "detected");
    step("raising_epoch", "epoch");
    step("waiting_leases", "leases");
    step("promoting", "promote");
    step("publishing_dns", "dns");
    step("rejoining", "rejoin");
    line += fmt::format(" done {};",
                        std::isnan(st.finished) ? "-" : fmt::format("{:+.2f}", st.finished));
    line += fmt::format(
        " promotion {} s (PostgreSQL {} s, {} tries reconciled in {} s, the lease in {} s); "
        "its workers started {}",
        Fixed(st.promote_s), Fixed(st.pg_promote_s), st.reconciled, Fixed(st.reconcile_s),
        Fixed(st.lease_s),
        std::isnan(st.workers_started) ? "-" : fmt::format("{:+.2f}", st.workers_started));
    fmt::print("{}\n", line);
    auto range = [](const std::vector<double>& v) {
      return v.empty() ? std::string("-")
                       : fmt::format("{:.2f} / {:.2f} / {:.2f}", Quantile(v, 0), Median(v),
                                     Quantile(v, 1));
    };
    std::vector<double> wait;
    for (size_t i = 0; i < st.api.size() && i < st.task.size(); ++i) {
      wait.push_back(st.task[i] - st.api[i]);
    }
    fmt::print(
        "    probe (first / median / last deployment): API answers {} s; task running {} s; "
        "trigger -> running {} s; {} DNS lookups failed\n"
        "    the accepted trigger requests took {} s; triggers not accepted: {}\n",
        range(st.api), range(st.task), range(wait), st.lookup_failures, range(st.trigger_took),
        st.refused.empty() ? "none" : st.refused);
    auto ms = [](const std::vector<double>& v) {
      return v.empty() ? std::string("-")
                       : fmt::format("{:.0f} / {:.0f} ms", Median(v), Quantile(v, 1));
    };
    fmt::print(
        "    a probe task (median / max): run -> scheduled {}, scheduled -> queued {}, queued "
        "-> claimed {}; the old region's {} tasks: {} running at the probe's end, all at {} s\n",
        ms(st.decide_ms), ms(st.queue_ms), ms(st.claim_ms), f_.tasks, st.retries_at_probe_end,
        std::isnan(st.retries_all_running) ? std::string("(not within 60 s)")
                                           : fmt::format("{:+.2f}", st.retries_all_running));
    if (!st.rejoined.empty()) {
      fmt::print("    the old primary rejoined {}, done at {:+.2f} s\n", st.rejoined,
                 st.rejoined_at);
    }
  }

  // RPO: the age at the failure of the oldest acknowledged write missing on `region`; the
  // missing writes acknowledged after the failure are counted apart (lost_after).
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
      if (at > failed_at) ++r->lost_after;
      if (!oldest || at < *oldest) oldest = at;
    }
    r->rpo =
        oldest ? std::max(0.0, std::chrono::duration<double>(failed_at - *oldest).count()) : 0.0;
    r->gap = w.gap();
  }

  // The newest operation toward `to`: the one a failure started.
  int64_t LatestOperation(const std::string& to) {
    Json ops = Body(Http(pair_->control_url(), "GET", "/api/v1/dr/operations"));
    if (!ops.is_object()) return 0;
    int64_t best = 0;
    for (const Json& o : ops["operations"]) {
      if (Str(o, "to") == to) best = std::max(best, o.value("id", int64_t{0}));
    }
    return best;
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
    if (!Probe(failed, failed_wall, &r.stages)) return r;
    r.rto_api = Quantile(r.stages.api, 1);
    r.rto = Quantile(r.stages.task, 1);
    std::this_thread::sleep_for(500ms);
    w.Stop();
    Rpo(w, prefix, to, failed_wall, &r);
    ProbeBreakdown(to, failed_wall, &r.stages);
    Steps(LatestOperation(to), to, failed_wall, &r.stages);
    Retries(to, failed_wall, &r.stages);
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
    HttpReply f =
        Http(pair_->control_url(), "POST", "/api/v1/dr/failover", R"({"mode":"planned"})");
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
        if (e.value("operation", Json()) == op && StepOf(Str(e, "message"), to) == "catching_up") {
          stopped = ParseIsoMs(Str(e, "at"));
        }
      }
      if (!stopped) std::this_thread::sleep_for(20ms);
    }
    if (!stopped) return Internal("no catch-up step in the events: " + events.dump());
    if (!Probe(asked, asked_wall, &r.stages)) return r;
    std::this_thread::sleep_for(500ms);
    w.Stop();
    // The probe counted from the request; the RTO counts from the end of the drain.
    const double drain = Since(asked_wall, *stopped);
    r.drain = drain;
    for (double& t : r.stages.api) t -= drain;
    for (double& t : r.stages.task) t -= drain;
    r.rto_api = Quantile(r.stages.api, 1);
    r.rto = Quantile(r.stages.task, 1);
    Rpo(w, prefix, to, *stopped, &r);
    ProbeBreakdown(to, *stopped, &r.stages);
    Steps(op, to, *stopped, &r.stages);
    Retries(to, *stopped, &r.stages);
    Rejoined(from, *stopped, &r.stages);
    Json o = Body(Http(pair_->control_url(), "GET", "/api/v1/dr/operations/" + std::to_string(op)));
    if (o.value("state", "") != "succeeded") return Internal("planned failover: " + o.dump());
    return r;
  }

  Flags f_;
  std::unique_ptr<PairProcess> pair_;
  std::vector<std::string> deployments_;
  std::vector<std::string> hosts_;       // each deployment's API host name
  std::atomic<int> lookup_failures_{0};  // of the probe's DNS lookups, since the run began
};

int Main(int argc, char** argv) {
  Flags f;
  CLI::App app{"The failover benchmark: RTO and RPO of planned and forced failovers"};
  app.add_option("--runs", f.runs, "Failovers per configuration (medians over them)");
  app.add_option("--deployments", f.deployments, "Deployments");
  app.add_option("--tasks", f.tasks, "Long-running tasks in all");
  app.add_option("--modes", f.modes, "planned and/or forced");
  app.add_option("--replication", f.replication, "asynchronous and/or synchronous");
  app.add_flag("--tls", f.tls, "Every part serves HTTPS with a certificate of a CA of its own");
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
  app.add_option("--load-threads", f.load_threads,
                 "Threads that spin while the bench runs: a busier machine");
  app.add_option("--probe-threads", f.probe_threads,
                 "Threads probing the deployments after a failure (each sweeps its share)");
  app.add_option("--planned-limit", f.planned_limit,
                 "Exit 2 if the planned RTO median exceeds this many seconds, or any RPO is "
                 "missed (0: never; the suite's guard)");
  app.add_option("--forced-limit", f.forced_limit,
                 "Exit 2 if the forced RTO median exceeds this many seconds, or any RPO is "
                 "missed (0: never; the suite's guard)");
  CLI11_PARSE(app, argc, argv);
  SetUpProcess(OnSignal);

  fmt::print(
      "failover bench: {} deployments, {} running tasks, {} runs per configuration\n"
      "settings: health checks every {} ms, lost after {} misses ({:.2f} s), lease {} ms "
      "renewed every {} ms (margin {} ms), drain {} s; {} workers x {} slots per region; "
      "{} s settle after every task runs again; {} spinning threads\n",
      f.deployments, f.tasks, f.runs, f.health_interval_ms, f.detection_misses,
      f.health_interval_ms * f.detection_misses / 1000.0, f.lease_ms, f.lease_renew_ms,
      f.lease_margin_ms, f.drain_seconds, f.workers, f.slots, f.settle_seconds, f.load_threads);
  std::atomic<bool> done{false};
  std::vector<std::thread> load;
  load.reserve(static_cast<size_t>(std::max(0, f.load_threads)));
  for (int i = 0; i < f.load_threads; ++i) {
    load.emplace_back([&done] {
      volatile uint64_t x = 0;
      while (!done.load(std::memory_order_relaxed)) x = x + 1;
    });
  }
  struct StopLoad {
    std::atomic<bool>* done;
    std::vector<std::thread>* load;
    ~StopLoad() {
      *done = true;
      for (std::thread& t : *load) t.join();
    }
  } stop_load{&done, &load};
  std::vector<std::string> summary, guard_failures;
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
      int missing = 0, lost_after = 0;
      for (const RunResult& r : runs) {
        rto.push_back(r.rto);
        api.push_back(r.rto_api);
        rpo.push_back(r.rpo);
        gap.push_back(r.gap);
        missing += r.missing;
        lost_after += r.lost_after;
      }
      // A verdict needs a measurement of every run asked for: medians over fewer (an
      // interrupt) are printed but judge nothing (bench/verdict.h).
      const bool complete = !runs.empty() && static_cast<int>(runs.size()) == f.runs;
      const double target_rto = mode == "forced" ? kForcedRtoTarget : kPlannedRtoTarget;
      const double target_rpo =
          mode == "planned" || replication == "synchronous" ? 0.0 : kAsyncRpoTarget;
      const Verdict rto_verdict = JudgeMedian(rto, f.runs, target_rto);
      const Verdict rpo_verdict = JudgeLoss(rpo, f.runs, target_rpo, missing, lost_after);
      const bool rpo_met = rpo_verdict == Verdict::kMet;
      summary.push_back(fmt::format(
          "{:<8} {:<13} RTO median {:5.2f} s (target <= {:.0f} s: {})  API {:5.2f} s  "
          "RPO median {:6.3f} s (target {}: {}; {} acknowledged writes missing, {} of them "
          "acknowledged after the failure)  writer's gap {:5.2f} s  [{} of {} runs]",
          mode, replication, Median(rto), target_rto, VerdictName(rto_verdict), Median(api),
          Median(rpo), target_rpo == 0 ? "0" : fmt::format("<= {:.0f} s", target_rpo),
          VerdictName(rpo_verdict), missing, lost_after, Median(gap), runs.size(), f.runs));
      const double limit = mode == "forced" ? f.forced_limit : f.planned_limit;
      if (limit > 0 && (!complete || Median(rto) > limit)) {
        guard_failures.push_back(fmt::format("{} {}: RTO median {} s, limit {:.1f} s", mode,
                                             replication, complete ? Fixed(Median(rto)) : "-",
                                             limit));
      }
      if ((f.planned_limit > 0 || f.forced_limit > 0) && !rpo_met) {
        guard_failures.push_back(
            fmt::format("{} {}: RPO not met ({} missing, {} after the "
                        "failure)",
                        mode, replication, missing, lost_after));
      }
    }
  }
  fmt::print("\nmedians\n");
  for (const std::string& line : summary) fmt::print("  {}\n", line);
  if (g_interrupted) {
    fmt::print(stderr, "interrupted: the figures above are not a measurement\n");
    return 1;
  }
  if (!guard_failures.empty()) {
    for (const std::string& g : guard_failures) fmt::print(stderr, "FAILED: {}\n", g);
    return 2;
  }
  return 0;
}

}  // namespace
}  // namespace tandem::bench

int main(int argc, char** argv) { return tandem::bench::Main(argc, argv); }
