// `tandem dr status|failover|failback|events`: the pair, through the control plane's DR API.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <thread>

#include "app/call.h"
#include "app/commands.h"

namespace tandem::app {
namespace {

using namespace std::chrono_literals;

Result<Client> Control(const Globals& g) { return Client::ConnectControl(g.target); }

// Sends to the control plane; the answer whatever its status, or the transport error.
Result<HttpResult> SendControl(const Globals& g, const std::string& method,
                               const std::string& path, const std::string& body = "") {
  ASSIGN_OR_RETURN(Client c, Control(g));
  return c.Send(method, path, body);
}

std::string Num(const Json& v, const char* fmt) {
  if (!v.is_number()) return "unknown";
  char buf[64];
  snprintf(buf, sizeof buf, fmt, v.get<double>());
  return buf;
}

void PrintStatus(const Json& s) {
  printf("%s\n", s.value("summary", "").c_str());
  printf("Epoch %lld · %s · automatic failover %s\n",
         static_cast<long long>(s.value("epoch", int64_t{0})), s.value("mode", "").c_str(),
         s.value("automatic_failover", false) ? "on" : "off");
  const Json& sync = s["sync"];
  printf("Sync: %s  %s  (%s)\n", sync.value("direction", "").c_str(),
         sync.value("state", "").c_str(), sync.value("detail", "").c_str());
  const Json& lag = s["lag"];
  printf("Lag: %s bytes, %s s · RPO of a forced failover now: %s s · commit %s ms\n",
         lag["bytes"].is_number() ? std::to_string(lag["bytes"].get<int64_t>()).c_str()
                                  : "unknown",
         Num(lag["seconds"], "%.3f").c_str(), Num(s["rpo_seconds"], "%.3f").c_str(),
         Num(s["commit_ms"], "%.2f").c_str());
  if (s.contains("logs")) {
    const Json& l = s["logs"];
    printf("Task logs: %s chunks (%s bytes) behind, oldest %s s, lag p50 %s s p99 %s s%s\n",
           Cell(l.value("chunks_behind", Json())).c_str(),
           Cell(l.value("bytes_behind", Json())).c_str(),
           Num(l.value("oldest_seconds", Json()), "%.3f").c_str(),
           Num(l.value("lag_p50_seconds", Json()), "%.3f").c_str(),
           Num(l.value("lag_p99_seconds", Json()), "%.3f").c_str(),
           l.value("error", "").empty() ? "" : (" · " + l.value("error", "")).c_str());
  }
  if (s.contains("images")) {
    const Json& im = s["images"];
    printf("Images: %s not yet on the standby%s\n",
           Cell(im.value("unreplicated", Json())).c_str(),
           im.value("error", "").empty() ? "" : (" · " + im.value("error", "")).c_str());
  }
  if (s.contains("dns") && s["dns"].is_object()) {
    const Json& d = s["dns"];
    printf("Host names: %s records in %s at %s, %s%s\n", Cell(d.value("records", Json())).c_str(),
           d.value("zone", "").c_str(), d.value("server", "").c_str(),
           d.value("current", false) ? ("pointing at " + s.value("active", "")).c_str()
                                     : "an update is pending",
           d.value("error", "").empty() ? "" : (" · " + d.value("error", "")).c_str());
  }
  std::vector<std::vector<std::string>> rows;
  for (const Json& r : s["regions"]) {
    std::string role = r.value("role", "unknown");
    if (r.value("original_primary", false)) role += " (original primary)";
    rows.push_back({r.value("name", ""), role, r.value("reachable", false) ? "yes" : "no",
                    r.value("lease", "-"), Cell(r.value("epoch", Json())),
                    Cell(r.value("running_tasks", Json())), r.value("resync_detail", "")});
  }
  PrintTable({"REGION", "ROLE", "REACHABLE", "LEASE", "EPOCH", "TASKS", "RESYNC"}, rows);
  if (s.contains("operation") && s["operation"].is_object()) {
    const Json& op = s["operation"];
    printf("Running: %s %s #%lld (%s -> %s), step %s\n", op.value("mode", "").c_str(),
           op.value("kind", "").c_str(), static_cast<long long>(op.value("id", int64_t{0})),
           op.value("from", "").c_str(), op.value("to", "").c_str(),
           op.value("step", "").c_str());
  }
}

// tandem dr status --detail: what a failover carries, item by item, and the readiness checks.
void PrintStatusDetail(const Json& s) {
  PrintStatus(s);
  printf("\nWhat a failover carries to %s\n", s.value("standby", "").c_str());
  std::vector<std::vector<std::string>> rows;
  for (const Json& i : s.value("items", Json::array())) {
    std::string lag = "-";
    const Json& l = i.value("lag", Json());
    if (l.is_object()) {
      lag.clear();
      for (const auto& [k, v] : l.items()) {
        if (!lag.empty()) lag += ", ";
        lag += k + " " + (v.is_number_float() ? Num(v, "%.3f") : Cell(v));
      }
    }
    rows.push_back({i.value("item", ""), lag, i.value("carried_by", "")});
  }
  PrintTable({"ITEM", "LAG", "CARRIED BY"}, rows);
  printf("\nReady for a failover: %s\n", s.value("ready_for_failover", false) ? "yes" : "NO");
  for (const Json& c : s.value("readiness", Json::array())) {
    printf("  [%s] %s: %s\n", c.value("ok", false) ? "ok" : "FAIL", c.value("check", "").c_str(),
           c.value("detail", "").c_str());
  }
}

void PrintEvent(const Json& e) {
  printf("%s  %-20s %-9s %s\n", e.value("at", "").c_str(), e.value("kind", "").c_str(),
         e.value("region", "").c_str(), e.value("message", "").c_str());
  fflush(stdout);
}

// Prints the operation's events as they come, until it ends. Exit 0 when it succeeded.
int Follow(const Globals& g, const Json& op) {
  const int64_t id = op.value("id", int64_t{0});
  int64_t after = 0;
  // Start from the events already there for this operation.
  while (true) {
    auto ev = SendControl(g, "GET", "/api/v1/dr/events?limit=1000&after=" +
                                         std::to_string(after));
    if (ev.ok() && ev->status == 200) {
      Json j = Json::parse(ev->body, nullptr, false);
      if (j.is_object()) {
        for (const Json& e : j["events"]) {
          after = std::max(after, e.value("id", int64_t{0}));
          if (g.format() == Format::kTable && e["operation"].is_number() &&
              e["operation"].get<int64_t>() == id) {
            PrintEvent(e);
          }
        }
      }
    }
    auto cur = SendControl(g, "GET", "/api/v1/dr/operations/" + std::to_string(id));
    if (!cur.ok()) {
      // The control plane may be restarting: it resumes the operation; keep following.
      std::this_thread::sleep_for(200ms);
      continue;
    }
    if (cur->status != 200) return FailHttp(*cur);
    Json o = Json::parse(cur->body, nullptr, false);
    const std::string state = o.value("state", "");
    if (state != "running") {
      // One more read, for the last events.
      auto last = SendControl(g, "GET", "/api/v1/dr/events?limit=1000&after=" +
                                            std::to_string(after));
      if (last.ok() && last->status == 200 && g.format() == Format::kTable) {
        Json j = Json::parse(last->body, nullptr, false);
        for (const Json& e : j["events"]) {
          if (e["operation"].is_number() && e["operation"].get<int64_t>() == id) PrintEvent(e);
        }
      }
      if (g.format() == Format::kJson) printf("%s\n", o.dump(2).c_str());
      if (state == "succeeded") return 0;
      fprintf(stderr, "error: the %s %s: %s\n", o.value("kind", "").c_str(),
              state == "rolled_back" ? "was rolled back" : "failed",
              o.value("detail", "").c_str());
      return 1;
    }
    std::this_thread::sleep_for(100ms);
  }
}

int StartAndFollow(const Globals& g, const std::string& path, const Json& body, bool wait) {
  auto r = SendControl(g, "POST", path, body.dump());
  if (!r.ok()) return Fail(r.status());
  if (r->status != 202) return FailHttp(*r);
  Json j = Json::parse(r->body, nullptr, false);
  const Json& op = j["operation"];
  if (!wait) {
    if (g.format() == Format::kJson) {
      printf("%s\n", op.dump(2).c_str());
    } else {
      printf("started %s #%lld; follow it with `tandem dr events --follow`\n",
             op.value("kind", "").c_str(), static_cast<long long>(op.value("id", int64_t{0})));
    }
    return 0;
  }
  if (g.format() == Format::kTable) {
    printf("%s %s #%lld: %s -> %s (epoch %lld -> %lld)\n", op.value("mode", "").c_str(),
           op.value("kind", "").c_str(), static_cast<long long>(op.value("id", int64_t{0})),
           op.value("from", "").c_str(), op.value("to", "").c_str(),
           static_cast<long long>(op.value("epoch_from", int64_t{0})),
           static_cast<long long>(op.value("epoch_to", int64_t{0})));
    fflush(stdout);
  }
  return Follow(g, op);
}

int Events(const Globals& g, int limit, bool follow) {
  auto r = SendControl(g, "GET", "/api/v1/dr/events?limit=" + std::to_string(limit));
  if (!r.ok()) return Fail(r.status());
  if (r->status != 200) return FailHttp(*r);
  Json j = Json::parse(r->body, nullptr, false);
  Json events = j["events"];
  int64_t after = 0;
  // Newest first from the API; people read oldest first.
  std::reverse(events.begin(), events.end());
  if (g.format() == Format::kJson && !follow) {
    printf("%s\n", events.dump(2).c_str());
    return 0;
  }
  for (const Json& e : events) {
    after = std::max(after, e.value("id", int64_t{0}));
    if (g.format() == Format::kJson) {
      printf("%s\n", e.dump().c_str());
    } else {
      PrintEvent(e);
    }
  }
  if (!follow) return 0;
  while (true) {  // until interrupted
    std::this_thread::sleep_for(250ms);
    auto more = SendControl(g, "GET", "/api/v1/dr/events?limit=1000&after=" +
                                          std::to_string(after));
    if (!more.ok() || more->status != 200) continue;
    Json m = Json::parse(more->body, nullptr, false);
    for (const Json& e : m["events"]) {
      after = std::max(after, e.value("id", int64_t{0}));
      if (g.format() == Format::kJson) {
        printf("%s\n", e.dump().c_str());
        fflush(stdout);
      } else {
        PrintEvent(e);
      }
    }
  }
}

}  // namespace

void AddDrCommands(CLI::App& app, Globals& g, Run* run) {
  auto* dr = app.add_subcommand("dr", "The region pair: status, failover, failback, events");
  dr->require_subcommand(1);

  auto* status = dr->add_subcommand("status", "Show the pair: active region, sync, lag, leases");
  auto detail = std::make_shared<bool>(false);
  status->add_flag("--detail", *detail,
                   "Also list every item a failover carries with its lag, and the readiness "
                   "checks (exit 1 when the standby lacks something a failover needs)");
  status->callback([run, &g, detail] {
    *run = [&g, detail] {
      auto r = SendControl(g, "GET", "/api/v1/dr/status");
      if (!*detail) return Print(g, r, PrintStatus);
      int code = Print(g, r, PrintStatusDetail);
      if (code == 0 && r.ok()) {
        Json j = Json::parse(r->body, nullptr, false);
        if (j.is_object() && !j.value("ready_for_failover", true)) code = 1;
      }
      return code;
    };
  });

  struct FailoverOpts {
    bool forced = false;
    bool declare_dead = false;
    bool no_wait = false;
  };
  auto fo = std::make_shared<FailoverOpts>();
  auto* failover = dr->add_subcommand(
      "failover",
      "Fail over to the standby: planned (zero loss; rolls back if it cannot finish), or with "
      "--forced falling through to a forced failover (promote what the standby has)");
  failover->add_flag("--forced", fo->forced,
                     "If the planned failover cannot complete (the primary is gone), promote the "
                     "standby with what it has replayed");
  failover->add_flag("--declare-dead", fo->declare_dead,
                     "The operator declares the old primary dead: do not wait for its lease to "
                     "expire (only safe if it really cannot start tasks)");
  failover->add_flag("--no-wait", fo->no_wait, "Start it and return at once");
  failover->callback([run, &g, fo] {
    *run = [&g, fo] {
      Json body = {{"mode", "planned"},
                   {"fall_through", fo->forced},
                   {"declare_dead", fo->declare_dead}};
      return StartAndFollow(g, "/api/v1/dr/failover", body, !fo->no_wait);
    };
  });

  auto back_no_wait = std::make_shared<bool>(false);
  auto* failback = dr->add_subcommand(
      "failback",
      "Planned failover back to the original primary, once its reverse sync has caught up");
  failback->add_flag("--no-wait", *back_no_wait, "Start it and return at once");
  failback->callback([run, &g, back_no_wait] {
    *run = [&g, back_no_wait] {
      return StartAndFollow(g, "/api/v1/dr/failback", Json::object(), !*back_no_wait);
    };
  });

  struct EventOpts {
    int limit = 50;
    bool follow = false;
  };
  auto eo = std::make_shared<EventOpts>();
  auto* events = dr->add_subcommand("events", "The pair's event history, oldest first");
  events->add_option("--limit", eo->limit, "How many of the latest events (default 50)")
      ->check(CLI::Range(1, 1000));
  events->add_flag("-f,--follow", eo->follow, "Keep printing new events");
  events->callback([run, &g, eo] { *run = [&g, eo] { return Events(g, eo->limit, eo->follow); }; });
}

}  // namespace tandem::app
