// `tandem region` (one region agent, in the foreground), `tandem up` (the local platform on
// the embedded default) and `tandem secret-key`.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>

#include "app/commands.h"
#include "base/clock.h"
#include "base/fs.h"
#include "base/net.h"
#include "base/process.h"
#include "crypto/secret_box.h"
#include "region/config.h"
#include "region/region.h"

namespace tandem::app {
namespace {

using namespace std::chrono_literals;

// Blocks SIGINT and SIGTERM in this thread and every thread it starts after, so the main
// thread can wait for them with sigtimedwait.
sigset_t BlockStopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

// Waits up to `timeout` for SIGINT/SIGTERM; returns the signal or 0.
int WaitStopSignal(const sigset_t& set, std::chrono::milliseconds timeout) {
  timespec ts{static_cast<time_t>(timeout.count() / 1000),
              static_cast<long>((timeout.count() % 1000) * 1000000)};
  int sig = sigtimedwait(&set, nullptr, &ts);
  return sig > 0 ? sig : 0;
}

int RunRegion(const std::string& config_path) {
  auto cfg = region::LoadRegionConfig(config_path);
  if (!cfg.ok()) return Fail(cfg.status());
  spdlog::set_level(spdlog::level::from_str(cfg->log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [" + cfg->name + "] %v");
  sigset_t set = BlockStopSignals();
  auto r = region::Region::Start(*cfg);
  if (!r.ok()) {
    spdlog::error("region {} did not start: {}", cfg->name, r.status().message());
    return ExitCodeFor(r.status().code());
  }
  int sig = 0;
  while ((sig = WaitStopSignal(set, 1000ms)) == 0) {
  }
  spdlog::info("received {}; stopping", strsignal(sig));
  (*r)->Stop();
  spdlog::info("region {} stopped", cfg->name);
  return 0;
}

struct UpOptions {
  int http_port = 8080;
  int pg_port = 15432;
  std::string address = "127.0.0.11";
};

std::string SelfExe() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "tandem";
}

std::string Tail(const std::string& path, size_t bytes) {
  auto text = ReadFile(path);
  if (!text.ok()) return "";
  return text->size() > bytes ? text->substr(text->size() - bytes) : *text;
}

// The platform file names the regions and who runs them; CLI commands find the API through it.
Status WritePlatformFile(const std::string& dir, const region::RegionConfig& c, pid_t region_pid) {
  nlohmann::json j = {
      {"pid", getpid()},
      {"regions",
       {{{"name", c.name},
         {"role", "primary"},
         {"active", true},
         {"url", "http://" + c.address + ":" + std::to_string(c.http_port)},
         {"pid", region_pid}}}}};
  return WriteFileAtomic(PlatformFile(dir), j.dump(2) + "\n");
}

Result<ChildPtr> StartRegionProcess(const std::string& config, const std::string& log) {
  return Child::Spawn({.argv = {SelfExe(), "region", "--config", config},
                       .output_path = log,
                       .death_signal = SIGTERM});
}

// Polls /readyz until it answers 200, the child exits, or a stop signal arrives.
Status WaitReady(Child& child, const std::string& url, const sigset_t& set, int* sig) {
  Client client(url);
  auto deadline = RealClock().Now() + 180s;
  while (RealClock().Now() < deadline) {
    if (auto e = child.Poll()) return Unavailable("the region " + e->Describe());
    auto r = client.Send("GET", "/readyz");
    if (r.ok() && r->status == 200) return Status::Ok();
    if ((*sig = WaitStopSignal(set, 200ms)) != 0) return Status::Ok();
  }
  return Unavailable("the region did not become ready within 180 s");
}

int RunUp(const Globals& g, const UpOptions& o) {
  const std::string& dir = g.target.state_dir;
  Status writable = EnsureWritableDir(dir);
  if (!writable.ok()) return Fail(writable);
  if (auto existing = ReadFile(PlatformFile(dir)); existing.ok()) {
    auto j = nlohmann::json::parse(*existing, nullptr, false);
    if (!j.is_discarded() && j.contains("pid") && ProcessAlive(j["pid"].get<pid_t>())) {
      return Fail(Unavailable("a platform is already running from " + dir + " (pid " +
                              std::to_string(j["pid"].get<pid_t>()) + ")"));
    }
  }
  std::string key_file = dir + "/secret.key";
  if (!PathExists(key_file) && PathExists(dir + "/region-a/pg/data/PG_VERSION")) {
    // A new key could not open the secrets already stored: refuse rather than start a region
    // that would then refuse to start.
    return Fail(FailedPrecondition("the secret key " + key_file + " is missing but region-a " +
                                   "already holds data sealed with it; restore the key file"));
  }
  if (!PathExists(key_file)) {
    Status s = WriteFileAtomic(key_file, NewSecretKeyBase64() + "\n", 0600);
    if (!s.ok()) return Fail(s);
  }

  region::RegionConfig c;
  c.name = "region-a";
  c.address = o.address;
  c.http_port = o.http_port;
  c.state_dir = dir + "/region-a";
  c.managed = region::ManagedPostgres{};
  c.managed->port = o.pg_port;
  c.managed->run_as = RunningAsRoot() ? "tandem" : "";
  c.secret_key_file = key_file;
  Status mk = MakeDirs(c.state_dir, 0755);
  if (!mk.ok()) return Fail(mk);
  const std::string config = c.state_dir + "/region.yaml";
  c.path = config;
  Status wr = WriteFileAtomic(config, region::RenderRegionConfig(c));
  if (!wr.ok()) return Fail(wr);
  // Check the generated file the way the region will read it.
  auto parsed = region::LoadRegionConfig(config);
  if (!parsed.ok()) return Fail(parsed.status());
  for (auto [what, port] : {std::pair{"HTTP", o.http_port}, {"PostgreSQL", o.pg_port}}) {
    Status free = CheckPortFree(o.address, port);
    if (!free.ok()) return Fail(Unavailable(std::string(what) + " port: " + free.message()));
  }

  const std::string url = "http://" + c.address + ":" + std::to_string(c.http_port);
  const std::string log = c.state_dir + "/region.log";
  sigset_t set = BlockStopSignals();
  printf("starting region-a (primary) on %s; log: %s\n", url.c_str(), log.c_str());
  fflush(stdout);
  auto child = StartRegionProcess(config, log);
  if (!child.ok()) return Fail(child.status());
  int sig = 0;
  Status ready = WaitReady(**child, url, set, &sig);
  if (!ready.ok()) {
    (*child)->Stop(SIGTERM, 60s);
    fprintf(stderr, "error: %s; the end of its log:\n%s\n", ready.message().c_str(),
            Tail(log, 3000).c_str());
    return ExitCodeFor(ready.code());
  }
  if (sig == 0) {
    Status pf = WritePlatformFile(dir, c, (*child)->pid());
    if (!pf.ok()) {
      (*child)->Stop(SIGTERM, 60s);
      return Fail(pf);
    }
    printf("tandem is up (state in %s)\n"
           "  region-a (primary)  %s\n"
           "  deployments API     %s/api/v1/deployments\n"
           "  Airflow API         %s/deployments/<deployment>/api/v2\n"
           "  health              %s/readyz   metrics %s/metrics\n"
           "Press Ctrl-C to stop.\n",
           dir.c_str(), url.c_str(), url.c_str(), url.c_str(), url.c_str(), url.c_str());
    fflush(stdout);
  }
  // Keep the region running: restart it if it dies, until asked to stop.
  Backoff backoff(500ms, 10s);
  while (sig == 0) {
    sig = WaitStopSignal(set, 500ms);
    if (sig != 0) break;
    if (auto e = (*child)->Poll()) {
      Duration wait = backoff.Next();
      fprintf(stderr, "region-a %s; restarting it in %.1f s (log: %s)\n", e->Describe().c_str(),
              std::chrono::duration<double>(wait).count(), log.c_str());
      if ((sig = WaitStopSignal(set, std::chrono::duration_cast<std::chrono::milliseconds>(wait))))
        break;
      auto again = StartRegionProcess(config, log);
      if (!again.ok()) return Fail(again.status());
      *child = std::move(again).value();
      (void)WritePlatformFile(dir, c, (*child)->pid());
    }
  }
  printf("stopping (%s)...\n", strsignal(sig));
  fflush(stdout);
  ExitInfo e = (*child)->Stop(SIGTERM, 60s);
  (void)RemoveAll(PlatformFile(dir));
  printf("region-a stopped (%s)\n", e.Describe().c_str());
  return 0;
}

}  // namespace

void AddServerCommands(CLI::App& app, Globals& g, Run* run) {
  auto* region = app.add_subcommand("region", "Run one region agent in the foreground");
  auto config = std::make_shared<std::string>();
  region->add_option("--config", *config, "Region config file (YAML)")->required();
  region->callback([run, config] { *run = [config] { return RunRegion(*config); }; });

  auto* up = app.add_subcommand(
      "up", "Set up and start the local platform in the foreground; Ctrl-C stops it");
  auto o = std::make_shared<UpOptions>();
  up->add_option("--http-port", o->http_port, "HTTP port of region-a (default 8080)")
      ->check(CLI::Range(1, 65535));
  up->add_option("--pg-port", o->pg_port, "PostgreSQL port of region-a (default 15432)")
      ->check(CLI::Range(1, 65535));
  up->add_option("--address", o->address, "Loopback address of region-a (default 127.0.0.11)");
  up->callback([run, &g, o] { *run = [&g, o] { return RunUp(g, *o); }; });

  auto* key = app.add_subcommand("secret-key", "Print a new random secret key (base64)");
  key->callback([run] {
    *run = [] {
      printf("%s\n", NewSecretKeyBase64().c_str());
      return 0;
    };
  });
}

}  // namespace tandem::app
