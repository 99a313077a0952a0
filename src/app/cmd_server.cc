// `tandem region` (one region agent, in the foreground), `tandem up` (the local platform on
// the embedded default) and `tandem secret-key`.
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <tuple>

#include "app/client.h"
#include "app/commands.h"
#include "auth/api_token.h"
#include "base/clock.h"
#include "base/fs.h"
#include "base/net.h"
#include "base/process.h"
#include "base/text.h"
#include "control/control_plane.h"
#include "crypto/secret_box.h"
#include "region/config.h"
#include "region/pair_config.h"
#include "region/region.h"
#include "tls/certificates.h"

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

int RunRegion(const std::string& config_path, const std::string& pair_path,
              const std::string& name) {
  RaiseFileLimit();  // the log store keeps running tasks' logs open
  Result<region::RegionConfig> cfg =
      InvalidArgument("give --config FILE, or --pair FILE --name NAME");
  if (!config_path.empty() && pair_path.empty()) {
    cfg = region::LoadRegionConfig(config_path);
  } else if (config_path.empty() && !pair_path.empty()) {
    auto p = region::LoadPairConfig(pair_path);
    if (!p.ok()) return Fail(p.status());
    if (name.empty()) return Fail(InvalidArgument("--pair needs --name (the region to run)"));
    cfg = region::RegionConfigFor(*p, name);
  }
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
  std::string control_address = "127.0.0.10";
  int control_port = 8070;
  std::string address = "127.0.0.11";    // region-a
  std::string address_b = "127.0.0.12";  // region-b
  int http_port = 8080;
  int http_port_b = 0;  // 0: region-a's port when the addresses differ, else its port + 1
  int pg_port = 15432;
  int pg_port_b = 0;  // likewise
  int registry_port = 5000;
  int registry_port_b = 0;  // likewise
  std::string mode = "asynchronous";
  bool automatic_failover = false;
  int dns_port = 5353;  // Knot DNS for the platform zone, on the control plane's address
  bool no_dns = false;
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

// The URL of a part of pair `p` that listens on address:port: https when the pair has TLS.
std::string Url(const region::PairConfig& p, const std::string& address, int port) {
  return (p.tls_ca_file ? "https://" : "http://") + address + ":" + std::to_string(port);
}

// The platform's CA and each part's certificate under <dir>/tls, made by the first `tandem up`
// and kept after: the CA for ten years, a server's certificate for a year. A certificate that no
// longer covers its part's names, has expired or does not chain to the CA is made again. Fills
// in the pair's tls settings.
Status EnsureCertificates(const std::string& dir, region::PairConfig& p) {
  using Days = std::chrono::duration<int64_t, std::ratio<86400>>;
  const std::string tls_dir = dir + "/tls";
  RETURN_IF_ERROR(MakeDirs(tls_dir, 0755));
  const std::string ca_file = CaFile(dir);
  const std::string ca_key = tls_dir + "/ca.key";
  tls::Pem ca;
  if (PathExists(ca_file) && PathExists(ca_key)) {
    RETURN_IF_ERROR(CheckPrivateFile(ca_key, "the platform's CA key"));
    ASSIGN_OR_RETURN(ca.certificate, ReadFile(ca_file));
    ASSIGN_OR_RETURN(ca.private_key, ReadFile(ca_key));
  } else {
    ASSIGN_OR_RETURN(ca, tls::CreateAuthority("tandem " + p.name + " CA", Days(3650)));
    RETURN_IF_ERROR(WriteFileAtomic(ca_key, ca.private_key, 0600));
    RETURN_IF_ERROR(WriteFileAtomic(ca_file, ca.certificate, 0644));
  }
  auto ensure = [&](const std::string& name, const tls::ServerNames& names,
                    const std::vector<std::string>& cover) -> Result<region::TlsSettings> {
    region::TlsSettings t{tls_dir + "/" + name + ".crt", tls_dir + "/" + name + ".key", ""};
    if (PathExists(t.cert_file) && PathExists(t.key_file) &&
        tls::CheckServerFiles({t.cert_file, t.key_file}, cover, ca_file).ok()) {
      return t;
    }
    ASSIGN_OR_RETURN(tls::Pem pem, tls::IssueServerCertificate(ca, names, Days(365)));
    RETURN_IF_ERROR(WriteFileAtomic(t.key_file, pem.private_key, 0600));
    RETURN_IF_ERROR(WriteFileAtomic(t.cert_file, pem.certificate, 0644));
    return t;
  };
  p.tls_ca_file = ca_file;
  const std::string control = "control." + p.zone;
  ASSIGN_OR_RETURN(p.control.tls, ensure("control", {control, {control}, {p.control.address}},
                                         {control, p.control.address}));
  for (region::PairRegion& r : p.regions) {
    // Its own name, and every deployment's host names (<namespace>.zone, <namespace>-exec.zone).
    const std::string own = r.name + "." + p.zone;
    ASSIGN_OR_RETURN(r.tls, ensure(r.name, {own, {own, "*." + p.zone}, {r.address}},
                                   {own, "any." + p.zone, r.address}));
  }
  return Status::Ok();
}

// The platform file names the control plane and the regions; CLI commands find the API through
// it (asking the control plane which region is active).
Status WritePlatformFile(const std::string& dir, const region::PairConfig& p,
                         const std::map<std::string, pid_t>& pids) {
  nlohmann::json regions = nlohmann::json::array();
  for (const region::PairRegion& r : p.regions) {
    regions.push_back({{"name", r.name},
                       {"role", r.role},
                       {"active", r.role == "primary"},
                       {"url", Url(p, r.address, r.http_port)},
                       {"pid", pids.count(r.name) ? pids.at(r.name) : 0}});
  }
  nlohmann::json j = {{"pid", getpid()},
                      {"control", Url(p, p.control.address, p.control.http_port)},
                      {"regions", regions},
                      {"zone", p.zone}};
  if (p.dns) j["dns"] = p.dns->address + ":" + std::to_string(p.dns->port);
  return WriteFileAtomic(PlatformFile(dir), j.dump(2) + "\n");
}

// Polls `url` until it answers 200, the child exits, or a stop signal arrives.
Status WaitReady(Child& child, const std::string& what, const std::string& url,
                 const std::string& ca_file, const std::string& path, const sigset_t& set,
                 int* sig) {
  Client client(url);
  client.set_ca_file(ca_file);
  auto deadline = RealClock().Now() + 180s;
  while (RealClock().Now() < deadline) {
    if (auto e = child.Poll()) return Unavailable(what + " " + e->Describe());
    auto r = client.Send("GET", path);
    if (r.ok() && r->status == 200) return Status::Ok();
    if ((*sig = WaitStopSignal(set, 200ms)) != 0) return Status::Ok();
  }
  return Unavailable(what + " did not become ready within 180 s");
}

// One process of the platform, kept running by `tandem up`.
struct Part {
  std::string name;  // control, region-a, region-b
  std::vector<std::string> argv;
  std::string log;
  std::string ready_url, ready_path;
  ChildPtr child;
  Backoff backoff{500ms, 10s};
  std::optional<MonoTime> restart_at;
};

Result<region::PairConfig> WritePairFile(const std::string& dir, const std::string& key_file,
                                         const std::string& owner_token_file, const UpOptions& o) {
  region::PairConfig p;
  p.name = "local";
  p.mode = o.mode;
  p.automatic_failover = o.automatic_failover;
  p.control = {o.control_address, o.control_port, dir + "/control"};
  p.secret_key_file = key_file;
  p.owner_token_file = owner_token_file;
  const bool same = o.address == o.address_b;
  const int http_b = o.http_port_b ? o.http_port_b : (same ? o.http_port + 1 : o.http_port);
  const int pg_b = o.pg_port_b ? o.pg_port_b : (same ? o.pg_port + 1 : o.pg_port);
  const int registry_b =
      o.registry_port_b ? o.registry_port_b : (same ? o.registry_port + 1 : o.registry_port);
  const std::string run_as = RunningAsRoot() ? "tandem" : "";
  auto region = [&](const std::string& name, const std::string& address, int http, int pg,
                    int registry, const std::string& role) {
    region::PairRegion r;
    r.name = name;
    r.address = address;
    r.http_port = http;
    r.state_dir = dir + "/" + name;
    r.role = role;
    r.postgres.port = pg;
    r.postgres.run_as = run_as;
    r.registry = region::RegistrySettings{.port = registry};
    return r;
  };
  p.regions[0] = region("region-a", o.address, o.http_port, o.pg_port, o.registry_port, "primary");
  p.regions[1] = region("region-b", o.address_b, http_b, pg_b, registry_b, "standby");
  // Host names carry no port: they work when both regions serve on one port, each on its own
  // address (the default).
  if (!o.no_dns && o.address != o.address_b && o.http_port == http_b) {
    region::PairDns dns;
    dns.address = o.control_address;
    dns.port = o.dns_port;
    dns.run_as = run_as;
    p.dns = dns;
  }
  RETURN_IF_ERROR(EnsureCertificates(dir, p));
  const std::string path = dir + "/pair.yaml";
  p.path = path;
  RETURN_IF_ERROR(WriteFileAtomic(path, region::RenderPairConfig(p)));
  // Check the generated file the way the parts will read it.
  return region::LoadPairConfig(path);
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
  if (!PathExists(key_file) && (PathExists(dir + "/region-a/pg/data/PG_VERSION") ||
                                PathExists(dir + "/region-b/pg/data/PG_VERSION"))) {
    // A new key could not open the secrets already stored: refuse rather than start regions
    // that would then refuse to start.
    return Fail(FailedPrecondition("the secret key " + key_file + " is missing but region-a " +
                                   "already holds data sealed with it; restore the key file"));
  }
  if (!PathExists(key_file)) {
    Status s = WriteFileAtomic(key_file, NewSecretKeyBase64() + "\n", 0600);
    if (!s.ok()) return Fail(s);
  }
  // The platform owner's API token: the regions make it the first owner, the CLI sends it.
  const std::string credential = CredentialFile(dir);
  if (!PathExists(credential)) {
    Status s = WriteFileAtomic(credential, auth::FormatToken(auth::NewToken()) + "\n", 0600);
    if (!s.ok()) return Fail(s);
  }
  auto pair = WritePairFile(dir, key_file, credential, o);
  if (!pair.ok()) return Fail(pair.status());
  const region::PairConfig& p = *pair;
  std::vector<std::tuple<std::string, std::string, int>> listeners = {
      {"control plane HTTP", p.control.address, p.control.http_port}};
  if (p.dns) listeners.emplace_back("DNS", p.dns->address, p.dns->port);
  for (const region::PairRegion& r : p.regions) {
    listeners.emplace_back(r.name + " HTTP", r.address, r.http_port);
    listeners.emplace_back(r.name + " PostgreSQL", r.address, r.postgres.port);
    if (r.registry) listeners.emplace_back(r.name + " registry", r.address, r.registry->port);
  }
  for (const auto& [what, address, port] : listeners) {
    Status free = CheckPortFree(address, port);
    if (!free.ok()) return Fail(Unavailable(what + " port: " + free.message()));
  }
  for (const region::PairRegion& r : p.regions) {
    Status mk = MakeDirs(r.state_dir, 0755);
    if (!mk.ok()) return Fail(mk);
  }

  std::vector<Part> parts(3);
  parts[0] = {"control",
              {SelfExe(), "control", "--pair", p.path},
              dir + "/control.log",
              Url(p, p.control.address, p.control.http_port),
              "/healthz"};
  for (size_t i = 0; i < 2; ++i) {
    const region::PairRegion& r = p.regions[i];
    parts[i + 1] = {r.name,
                    {SelfExe(), "region", "--pair", p.path, "--name", r.name},
                    r.state_dir + "/region.log",
                    Url(p, r.address, r.http_port),
                    "/readyz"};
  }
  auto spawn = [](Part& part) -> Status {
    ASSIGN_OR_RETURN(
        part.child,
        Child::Spawn({.argv = part.argv, .output_path = part.log, .death_signal = SIGTERM}));
    return Status::Ok();
  };
  auto pids = [&parts] {
    std::map<std::string, pid_t> m;
    for (const Part& part : parts) {
      if (part.child) m[part.name] = part.child->pid();
    }
    return m;
  };
  auto stop_all = [&parts] {
    // Regions first (the standby, then the primary), then the control plane.
    for (size_t i = parts.size(); i-- > 0;) {
      if (parts[i].child) {
        ExitInfo e = parts[i].child->Stop(SIGTERM, 60s);
        printf("%s stopped (%s)\n", parts[i].name.c_str(), e.Describe().c_str());
        parts[i].child.reset();
      }
    }
    fflush(stdout);
  };

  sigset_t set = BlockStopSignals();
  int sig = 0;
  for (Part& part : parts) {
    printf("starting %s on %s; log: %s\n", part.name.c_str(), part.ready_url.c_str(),
           part.log.c_str());
    fflush(stdout);
    if (Status s = spawn(part); !s.ok()) {
      stop_all();
      return Fail(s);
    }
    Status ready = WaitReady(*part.child, part.name, part.ready_url, p.tls_ca_file.value_or(""),
                             part.ready_path, set, &sig);
    if (!ready.ok()) {
      fprintf(stderr, "error: %s; the end of its log:\n%s\n", ready.message().c_str(),
              Tail(part.log, 3000).c_str());
      stop_all();
      return ExitCodeFor(ready.code());
    }
    if (sig != 0) break;
  }
  if (sig == 0) {
    Status pf = WritePlatformFile(dir, p, pids());
    if (!pf.ok()) {
      stop_all();
      return Fail(pf);
    }
    const std::string a = parts[1].ready_url, b = parts[2].ready_url;
    printf(
        "tandem is up (state in %s; pair config %s)\n"
        "  control plane       %s   (tandem dr status)\n"
        "  region-a (primary)  %s\n"
        "  region-b (standby)  %s\n"
        "  deployments API     %s/api/v1/deployments\n"
        "  Airflow API         %s/deployments/<deployment>/api/v2\n"
        "  health              %s/readyz   metrics %s/metrics\n"
        "  credential          %s (the platform owner's API token, mode 0600; the CLI sends "
        "it: Authorization: Bearer ...)\n"
        "  CA                  %s (every part's certificate chains to it; the CLI trusts it; "
        "curl --cacert %s)\n",
        dir.c_str(), p.path.c_str(), parts[0].ready_url.c_str(), a.c_str(), b.c_str(), a.c_str(),
        a.c_str(), a.c_str(), a.c_str(), CredentialFile(dir).c_str(), CaFile(dir).c_str(),
        CaFile(dir).c_str());
    if (p.dns) {
      const std::string port = std::to_string(p.regions[0].http_port);
      printf(
          "  DNS                 %s:%d for %s (dig @%s -p %d control.%s)\n"
          "  host names          control.%s:%d, <namespace>.%s:%s (API), "
          "<namespace>-exec.%s:%s (Execution API)\n",
          p.dns->address.c_str(), p.dns->port, p.zone.c_str(), p.dns->address.c_str(), p.dns->port,
          p.zone.c_str(), p.zone.c_str(), p.control.http_port, p.zone.c_str(), port.c_str(),
          p.zone.c_str(), port.c_str());
    }
    printf("Press Ctrl-C to stop.\n");
    fflush(stdout);
  }
  // Keep every part running: restart one that dies, until asked to stop.
  while (sig == 0) {
    sig = WaitStopSignal(set, 500ms);
    if (sig != 0) break;
    for (Part& part : parts) {
      if (part.child) {
        if (auto e = part.child->Poll()) {
          Duration wait = part.backoff.Next();
          fprintf(stderr, "%s %s; restarting it in %.1f s (log: %s)\n", part.name.c_str(),
                  e->Describe().c_str(), std::chrono::duration<double>(wait).count(),
                  part.log.c_str());
          part.child.reset();
          part.restart_at = RealClock().Now() + wait;
        }
      } else if (part.restart_at && RealClock().Now() >= *part.restart_at) {
        part.restart_at.reset();
        if (Status s = spawn(part); !s.ok()) {
          fprintf(stderr, "restarting %s: %s\n", part.name.c_str(), s.ToString().c_str());
          part.restart_at = RealClock().Now() + part.backoff.Next();
        }
        (void)WritePlatformFile(dir, p, pids());
      }
    }
  }
  printf("stopping (%s)...\n", strsignal(sig));
  fflush(stdout);
  stop_all();
  (void)RemoveAll(PlatformFile(dir));
  return 0;
}

namespace {

// The control plane's DNS settings from the pair's dns section. The TSIG secret comes from
// dns.tsig.secret_file, or (a managed server with no key given) is derived from the pair's
// secret key, so it needs no file of its own.
Result<control::DnsSettings> DnsSettingsFor(const region::PairConfig& p,
                                            const std::string& secret_key) {
  control::DnsSettings d;
  d.enabled = true;
  d.managed = p.dns->managed;
  d.server = {p.dns->address, p.dns->port};
  d.zone = p.zone;
  d.ttl = static_cast<uint32_t>(p.dns->ttl_seconds);
  d.key.name = p.dns->tsig_name;
  d.key.algorithm = p.dns->tsig_algorithm;
  if (!p.dns->tsig_secret_file.empty()) {
    auto text = ReadFile(p.dns->tsig_secret_file);
    if (!text.ok()) {
      return InvalidArgument("dns.tsig.secret_file " + p.dns->tsig_secret_file +
                             " cannot be read: " + text.status().message());
    }
    d.key.secret = std::string(TrimSpace(*text));
  } else {
    ASSIGN_OR_RETURN(SecretBox box, SecretBox::FromBase64(secret_key));
    d.key.secret = Base64Encode(box.DeriveKey("tandem dns tsig v1"));
  }
  d.state_dir = p.control.state_dir + "/dns";
  d.run_as = p.dns->run_as;
  d.control_address = p.control.address;
  for (const region::PairRegion& r : p.regions) d.region_addresses[r.name] = r.address;
  return d;
}

}  // namespace

int RunControl(const std::string& pair_path) {
  auto p = region::LoadPairConfig(pair_path);
  if (!p.ok()) return Fail(p.status());
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [control] %v");
  control::ControlSettings s;
  s.pair = p->name;
  s.address = p->control.address;
  s.http_port = p->control.http_port;
  s.state_dir = p->control.state_dir;
  if (!p->secret_key.empty()) {
    s.secret_key = p->secret_key;
  } else {
    if (PathExists(p->secret_key_file)) {
      Status priv = CheckPrivateFile(p->secret_key_file, "the secret key file");
      if (!priv.ok()) return Fail(priv);
    }
    auto k = ReadFile(p->secret_key_file);
    if (!k.ok()) {
      return Fail(InvalidArgument("the secret key file " + p->secret_key_file +
                                  " cannot be read: " + k.status().message()));
    }
    s.secret_key = TrimSpace(*k);
  }
  for (const region::PairRegion& r : p->regions) {
    s.regions.push_back({r.name, Url(*p, r.address, r.http_port), r.role == "primary"});
  }
  if (p->control.tls) {
    Status files = tls::CheckServerFiles({p->control.tls->cert_file, p->control.tls->key_file},
                                         {p->control.address}, p->tls_ca_file.value_or(""));
    if (!files.ok()) return Fail(files.WithContext("control.tls"));
    s.tls_cert_file = p->control.tls->cert_file;
    s.tls_key_file = p->control.tls->key_file;
    s.trust = {p->tls_ca_file.value_or("")};
  } else if (!IsLoopback(p->control.address)) {
    spdlog::warn(
        "the control plane serves plain HTTP on {}: anyone on that network can read its "
        "traffic and credentials (give the pair a tls section)",
        p->control.address);
  }
  s.mode = p->mode;
  s.automatic_failover = p->automatic_failover;
  s.health_interval = std::chrono::milliseconds(p->health_interval_ms);
  s.detection_misses = p->detection_misses;
  s.lease = std::chrono::milliseconds(p->lease_ms);
  s.drain_timeout = std::chrono::seconds(p->drain_timeout_seconds);
  s.planned_timeout = std::chrono::seconds(p->planned_timeout_seconds);
  if (p->dns) {
    auto d = DnsSettingsFor(*p, s.secret_key);
    if (!d.ok()) return Fail(d.status());
    s.dns = *d;
  }
  if (const char* fp = std::getenv("TANDEM_FAILPOINT")) s.failpoint = fp;
  sigset_t set = BlockStopSignals();
  auto c = control::ControlPlane::Start(s);
  if (!c.ok()) {
    spdlog::error("the control plane did not start: {}", c.status().message());
    return ExitCodeFor(c.status().code());
  }
  int sig = 0;
  while ((sig = WaitStopSignal(set, 1000ms)) == 0) {
  }
  spdlog::info("received {}; stopping", strsignal(sig));
  (*c)->Stop();
  return 0;
}

}  // namespace

void AddServerCommands(CLI::App& app, Globals& g, Run* run) {
  auto* region = app.add_subcommand("region", "Run one region agent in the foreground");
  struct RegionArgs {
    std::string config, pair, name;
  };
  auto ra = std::make_shared<RegionArgs>();
  region->add_option("--config", ra->config, "Region config file (YAML), for a lone region");
  region->add_option("--pair", ra->pair, "Pair config file (YAML): run one region of the pair");
  region->add_option("--name", ra->name, "With --pair: which region to run");
  region->callback(
      [run, ra] { *run = [ra] { return RunRegion(ra->config, ra->pair, ra->name); }; });

  auto* control = app.add_subcommand(
      "control", "Run the pair's control plane in the foreground (epoch, leases, failover)");
  auto pair_file = std::make_shared<std::string>();
  control->add_option("--pair", *pair_file, "Pair config file (YAML)")->required();
  control->callback([run, pair_file] { *run = [pair_file] { return RunControl(*pair_file); }; });

  auto* up = app.add_subcommand(
      "up", "Set up and start the local platform in the foreground; Ctrl-C stops it");
  auto o = std::make_shared<UpOptions>();
  up->add_option("--http-port", o->http_port, "HTTP port of region-a (default 8080)")
      ->check(CLI::Range(1, 65535));
  up->add_option("--pg-port", o->pg_port, "PostgreSQL port of region-a (default 15432)")
      ->check(CLI::Range(1, 65535));
  up->add_option("--address", o->address, "Loopback address of region-a (default 127.0.0.11)");
  up->add_option("--address-b", o->address_b, "Loopback address of region-b (default 127.0.0.12)");
  up->add_option("--http-port-b", o->http_port_b,
                 "HTTP port of region-b (default: region-a's, or the next one on one address)")
      ->check(CLI::Range(1, 65535));
  up->add_option("--pg-port-b", o->pg_port_b,
                 "PostgreSQL port of region-b (default: as --http-port-b)")
      ->check(CLI::Range(1, 65535));
  up->add_option("--registry-port", o->registry_port,
                 "OCI registry port of region-a (default 5000)")
      ->check(CLI::Range(1, 65535));
  up->add_option("--registry-port-b", o->registry_port_b,
                 "OCI registry port of region-b (default: as --http-port-b)")
      ->check(CLI::Range(1, 65535));
  up->add_option("--control-address", o->control_address,
                 "Loopback address of the control plane (default 127.0.0.10)");
  up->add_option("--control-port", o->control_port, "HTTP port of the control plane (default 8070)")
      ->check(CLI::Range(1, 65535));
  up->add_option("--mode", o->mode, "Replication mode of the pair (default asynchronous)")
      ->check(CLI::IsMember({"asynchronous", "synchronous"}));
  up->add_flag("--automatic-failover", o->automatic_failover,
               "Fail over by itself when the primary region is lost");
  up->add_option("--dns-port", o->dns_port,
                 "Port of the platform zone's DNS server, on the control plane's address "
                 "(default 5353)")
      ->check(CLI::Range(1, 65535));
  up->add_flag("--no-dns", o->no_dns, "Run no DNS server: clients address the regions directly");
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
