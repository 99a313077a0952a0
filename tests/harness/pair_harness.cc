#include "harness/pair_harness.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <set>
#include <thread>

#include "base/fs.h"
#include "base/net.h"
#include "crypto/secret_box.h"
#include "harness/pg_harness.h"
#include "tls/certificates.h"

namespace tandem::testing {

using namespace std::chrono_literals;
using Json = nlohmann::json;

Result<std::unique_ptr<PairProcess>> PairProcess::Create(Options o) {
  std::unique_ptr<PairProcess> p(new PairProcess());
  p->o_ = o;
  ASSIGN_OR_RETURN(TempDir tmp, TempDir::Create("tandem-test-pair"));
  p->dir_ = AbsolutePath(tmp.Release());
  chmod(p->dir_.c_str(), 0755);  // the PostgreSQL user must reach its data directory
  // The processes' TMPDIR, where the workers keep their tasks' directories: removed with the
  // rest, even when a SIGKILLed worker left them. Tasks run as other users, who search it.
  RETURN_IF_ERROR(MakeDirs(p->tmp_dir(), 0711));
  if (o.dns && !o.own_addresses) return InvalidArgument("Options::dns needs own_addresses");
  // Eight distinct ports (a port just released may be handed out again).
  std::set<int> ports;
  while (ports.size() < 8) {
    ASSIGN_OR_RETURN(int port, PickFreePort());
    ports.insert(port);
  }
  auto next = ports.begin();
  for (const char* part : {"control", "region-a", "region-b"}) p->addresses_[part] = "127.0.0.1";
  if (o.own_addresses) {
    // Per test process, so tests running side by side do not share addresses.
    const int n = 100 + getpid() % 150, m = 1 + (getpid() / 150) % 250;
    const std::string base = "127." + std::to_string(n) + "." + std::to_string(m) + ".";
    p->addresses_["control"] = base + "1";
    p->addresses_["region-a"] = base + "2";
    p->addresses_["region-b"] = base + "3";
  }
  p->control_port_ = *next++;
  for (const char* name : {"region-a", "region-b"}) {
    p->http_ports_[name] = *next++;
    p->pg_ports_[name] = *next++;
    p->registry_ports_[name] = *next++;
  }
  p->dns_port_ = *next++;
  // Host names carry no port: with DNS both regions serve on one, each on its own address.
  if (o.dns) p->http_ports_["region-b"] = p->http_ports_["region-a"];
  RETURN_IF_ERROR(WriteFileAtomic(p->dir_ + "/secret.key", NewSecretKeyBase64() + "\n", 0600));
  // With TLS: a CA, and for each part a certificate for its address (and the zone's names).
  // A part's tls section, its keys indented by `indent`.
  auto tls_section = [&](const std::string& part, const std::string& indent) {
    if (!o.tls) return std::string();
    return indent.substr(2) + "tls:\n" + indent + "cert_file: tls/" + part + ".crt\n" + indent +
           "key_file: tls/" + part + ".key\n";
  };
  if (o.tls) {
    RETURN_IF_ERROR(MakeDirs(p->dir_ + "/ca"));
    RETURN_IF_ERROR(MakeDirs(p->dir_ + "/tls"));
    ASSIGN_OR_RETURN(tls::Pem ca, tls::CreateAuthority("tandem test CA", std::chrono::hours(24)));
    RETURN_IF_ERROR(WriteFileAtomic(p->ca_file(), ca.certificate));
    for (const char* part : {"control", "region-a", "region-b"}) {
      const std::string name = std::string(part) + ".tandem.test";
      ASSIGN_OR_RETURN(tls::Pem pem, tls::IssueServerCertificate(
                                         ca, {name, {name, "*.tandem.test"}, {p->addresses_[part]}},
                                         std::chrono::hours(24)));
      const std::string base = p->dir_ + "/tls/" + part;
      RETURN_IF_ERROR(WriteFileAtomic(base + ".key", pem.private_key, 0600));
      RETURN_IF_ERROR(WriteFileAtomic(base + ".crt", pem.certificate));
    }
    SetTestCaFile(p->ca_file());
  } else {
    SetTestCaFile("");  // a CA an earlier test of this process set is not this one's
  }
  auto region = [&](const std::string& name, const std::string& role) {
    return "  - name: " + name + "\n    address: " + p->addresses_[name] +
           "\n    http_port: " + std::to_string(p->http_ports_[name]) + "\n    state_dir: " + name +
           "\n    role: " + role +
           "\n    postgres:\n      port: " + std::to_string(p->pg_ports_[name]) +
           "\n      run_as: \"" + RunAsUser() +
           "\"\n      shared_buffers: 16MB\n    workers:\n      local: " +
           std::to_string(o.local_workers) + "\n      slots: " + std::to_string(o.worker_slots) +
           "\n      heartbeat_ms: 500\n    registry:\n      port: " +
           std::to_string(p->registry_ports_[name]) + "\n" + tls_section(name, "      ");
  };
  std::string yaml =
      "pair:\n  name: test\n  mode: " + o.mode +
      "\n  synchronous_degrade_after_ms: " + std::to_string(o.synchronous_degrade_after_ms) +
      "\n  automatic_failover: " + (o.automatic_failover ? "true" : "false") +
      "\n  health_interval_ms: " + std::to_string(o.health_interval_ms) +
      "\n  detection_misses: " + std::to_string(o.detection_misses) +
      "\n  lease_ms: " + std::to_string(o.lease_ms) +
      "\n  lease_renew_ms: " + std::to_string(o.lease_renew_ms) +
      "\n  lease_margin_ms: " + std::to_string(o.lease_margin_ms) +
      "\n  drain_timeout_seconds: " + std::to_string(o.drain_timeout_seconds) +
      "\n  planned_timeout_seconds: " + std::to_string(o.planned_timeout_seconds) +
      (o.image_replication_timeout_seconds > 0
           ? "\n  image_replication_timeout_seconds: " +
                 std::to_string(o.image_replication_timeout_seconds)
           : std::string()) +
      "\ncontrol:\n  address: " + p->addresses_["control"] +
      "\n  http_port: " + std::to_string(p->control_port_) + "\n  state_dir: control\n" +
      tls_section("control", "    ") + (o.tls ? "tls:\n  ca_file: ca/ca.crt\n" : "") +
      "secrets:\n  key_file: secret.key\n  owner_token_file: " + WriteOwnerTokenFile(p->dir_) +
      "\nregions:\n" + region("region-a", "primary") + region("region-b", "standby");
  if (o.dns) {
    yaml += "dns:\n  address: " + p->addresses_["control"] +
            "\n  port: " + std::to_string(p->dns_port_) +
            "\n  managed: " + (o.dns_external ? "false" : "true") + "\n";
    if (!RunAsUser().empty()) yaml += "  run_as: \"" + RunAsUser() + "\"\n";
    if (o.dns_external) {
      RETURN_IF_ERROR(WriteFileAtomic(p->dir_ + "/dns-tsig.key", o.dns_tsig_secret + "\n", 0600));
      yaml += "  tsig:\n    name: tandem-update\n    secret_file: dns-tsig.key\n";
    }
  }
  RETURN_IF_ERROR(WriteFileAtomic(p->pair_file(), yaml));
  return p;
}

PairProcess::~PairProcess() {
  Heal();
  KillControl(SIGTERM);
  for (const char* name : {"region-b", "region-a"}) KillRegion(name, SIGTERM);
  // A postmaster outliving its region (it should not) is stopped here, by its PID.
  for (const char* name : {"region-a", "region-b"}) {
    pid_t pg = PostgresPid(name);
    if (pg > 0 && ProcessAlive(pg)) {
      kill(pg, SIGQUIT);
      for (int i = 0; i < 100 && ProcessAlive(pg); ++i) std::this_thread::sleep_for(50ms);
    }
    // Likewise a registry, found by its command line (which names the region's state
    // directory).
    if (!dir_.empty()) KillRegistries(region_dir(name));
  }
  // The control plane stops its DNS server; one it left behind is stopped here.
  if (!dir_.empty()) KillServers("knotd", dir_ + "/control");
  if (!dir_.empty()) (void)RemoveAll(dir_);
}

Status Nft(const std::vector<std::string>& args) {
  SpawnOptions so;
  so.argv = {PathExists("/usr/sbin/nft") ? "/usr/sbin/nft" : "/sbin/nft"};
  so.argv.insert(so.argv.end(), args.begin(), args.end());
  auto r = RunCommand(so, 10s);
  if (!r.ok()) return r.status();
  if (!r->exit.exited || r->exit.code != 0) {
    return Internal("nft " + args[0] + " " + r->exit.Describe() + ": " + r->output);
  }
  return Status::Ok();
}

std::string PairProcess::control_url() const {
  return (o_.tls ? "https://" : "http://") + addresses_.at("control") + ":" +
         std::to_string(control_port_);
}

std::string PairProcess::region_url(const std::string& name) const {
  return (o_.tls ? "https://" : "http://") + addresses_.at(name) + ":" +
         std::to_string(http_ports_.at(name));
}

std::string PairProcess::registry_url(const std::string& name) const {
  return (o_.tls ? "https://" : "http://") + addresses_.at(name) + ":" +
         std::to_string(registry_ports_.at(name));
}

Status PairProcess::Cut(const std::string& x, const std::string& y) {
  if (!o_.own_addresses) return FailedPrecondition("Cut needs Options::own_addresses");
  const std::string& ax = addresses_.at(x);
  const std::string& ay = addresses_.at(y);
  if (nft_table_.empty()) {
    const std::string table = "tandem_test_" + std::to_string(getpid());
    RETURN_IF_ERROR(Nft({"add", "table", "ip", table}));
    nft_table_ = table;
    RETURN_IF_ERROR(Nft({"add", "chain", "ip", table, "out",
                         "{ type filter hook output priority 0 ; policy accept ; }"}));
  }
  for (const auto& [from, to] : {std::pair{ax, ay}, std::pair{ay, ax}}) {
    RETURN_IF_ERROR(Nft(
        {"add", "rule", "ip", nft_table_, "out", "ip", "saddr", from, "ip", "daddr", to, "drop"}));
  }
  return Status::Ok();
}

void PairProcess::Heal() {
  if (nft_table_.empty()) return;
  (void)Nft({"delete", "table", "ip", nft_table_});
  nft_table_.clear();
}

std::string PairProcess::Log(const std::string& process) const {
  auto l = ReadFile(dir_ + "/" + process + ".log");
  return l.ok() ? *l : "";
}

std::string PairProcess::Logs() const {
  std::string out;
  for (const char* p : {"control", "region-a", "region-b"}) {
    std::string l = Log(p);
    if (l.size() > 6000) l = l.substr(l.size() - 6000);
    out += "\n----- " + std::string(p) + " -----\n" + l;
  }
  return out;
}

pid_t PairProcess::PostgresPid(const std::string& name) const {
  auto pidfile = ReadFile(region_dir(name) + "/pg/data/postmaster.pid");
  return pidfile.ok() ? static_cast<pid_t>(atol(pidfile->c_str())) : 0;
}

std::string PairProcess::Dsn(const std::string& name) const {
  auto pw = ReadFile(region_dir(name) + "/pg/pg.password");
  return "host=" + addresses_.at(name) + " port=" + std::to_string(pg_ports_.at(name)) +
         " user=tandem dbname=tandem password=" + (pw.ok() ? *pw : "");
}

Status PairProcess::StartControl(const std::string& failpoint) {
  SpawnOptions so{.argv = {TandemBin(), "control", "--pair", pair_file()},
                  .env_extra = {{"TMPDIR", tmp_dir()}},
                  .output_path = dir_ + "/control.log",
                  .death_signal = SIGKILL};
  if (!failpoint.empty()) so.env_extra["TANDEM_FAILPOINT"] = failpoint;
  ASSIGN_OR_RETURN(control_, Child::Spawn(so));
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (auto e = control_->Poll()) {
      control_.reset();
      return Unavailable("control plane " + e->Describe() + "; log:\n" + Log("control"));
    }
    if (Http(control_url(), "GET", "/healthz").status == 200) return Status::Ok();
    std::this_thread::sleep_for(50ms);
  }
  return Unavailable("control plane not up after 30 s; log:\n" + Log("control"));
}

bool PairProcess::ControlRunning() {
  if (!control_) return false;
  if (auto e = control_->Poll()) {
    control_.reset();
    return false;
  }
  return true;
}

Status PairProcess::StartRegion(const std::string& name, bool wait_ready) {
  ASSIGN_OR_RETURN(
      regions_[name],
      Child::Spawn({.argv = {TandemBin(), "region", "--pair", pair_file(), "--name", name},
                    .env_extra = {{"TMPDIR", tmp_dir()}},
                    .output_path = dir_ + "/" + name + ".log",
                    .death_signal = SIGKILL}));
  if (!wait_ready) return Status::Ok();
  auto deadline = std::chrono::steady_clock::now() + 120s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (auto e = regions_[name]->Poll()) {
      regions_.erase(name);
      return Unavailable(name + " " + e->Describe() + "; log:\n" + Log(name));
    }
    if (Http(region_url(name), "GET", "/readyz").status == 200) return Status::Ok();
    std::this_thread::sleep_for(50ms);
  }
  return Unavailable(name + " not ready after 120 s; log:\n" + Log(name));
}

void PairProcess::KillControl(int sig) {
  if (!control_) return;
  if (sig == SIGKILL) {
    control_->Signal(SIGKILL);
    control_->Wait(30s);
  } else {
    control_->Stop(sig, 30s);
  }
  control_.reset();
}

void PairProcess::KillRegion(const std::string& name, int sig) {
  auto it = regions_.find(name);
  if (sig == SIGKILL) {
    // The whole region is lost at once: its agent, its workers (they die with it), its
    // PostgreSQL and its registry.
    pid_t pg = PostgresPid(name);
    std::vector<pid_t> registries = RegistryPids(region_dir(name));
    if (it != regions_.end()) it->second->Signal(SIGKILL);
    if (pg > 0) kill(pg, SIGKILL);
    for (pid_t r : registries) kill(r, SIGKILL);
    if (it != regions_.end()) it->second->Wait(30s);
    for (int i = 0; pg > 0 && i < 100 && ProcessAlive(pg); ++i) std::this_thread::sleep_for(20ms);
    for (pid_t r : registries) {
      for (int i = 0; i < 100 && ProcessAlive(r); ++i) std::this_thread::sleep_for(20ms);
    }
  } else if (it != regions_.end()) {
    it->second->Stop(sig, 60s);
  }
  if (it != regions_.end()) regions_.erase(it);
}

Status PairProcess::StartAll() {
  RETURN_IF_ERROR(StartControl());
  RETURN_IF_ERROR(StartRegion("region-a"));
  RETURN_IF_ERROR(StartRegion("region-b"));
  return WaitStatus(
      [](const Json& s) {
        return s.is_object() && s["sync"]["state"] == "syncing" &&
               s["regions"][0]["lease"] == "holds";
      },
      60s, "the pair to be syncing with region-a holding the lease");
}

Status PairProcess::FailoverStoppingAt(const std::string& failpoint) {
  KillControl(SIGTERM);
  RETURN_IF_ERROR(StartControl(failpoint));
  RETURN_IF_ERROR(
      WaitStatus([](const Json& s) { return s["sync"]["state"] == "syncing"; }, 30s, "syncing"));
  CliRun f = Cli({"dr", "failover", "--no-wait"});
  if (f.exit_code != 0) return Internal("dr failover: " + f.output);
  for (int i = 0; i < 300 && ControlRunning(); ++i) std::this_thread::sleep_for(100ms);
  if (ControlRunning()) {
    return Internal("the failpoint " + failpoint + " did not stop the control plane" + Logs());
  }
  return StartControl();
}

Json PairProcess::DrStatus() {
  HttpReply r = Http(control_url(), "GET", "/api/v1/dr/status");
  if (r.status != 200) return nullptr;
  Json j = Json::parse(r.body, nullptr, false);
  return j.is_discarded() ? Json(nullptr) : j;
}

Status PairProcess::WaitStatus(const std::function<bool(const Json&)>& ok,
                               std::chrono::milliseconds timeout, const std::string& what) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  Json last;
  while (std::chrono::steady_clock::now() < deadline) {
    last = DrStatus();
    if (!last.is_null() && ok(last)) return Status::Ok();
    std::this_thread::sleep_for(50ms);
  }
  return Unavailable("timed out waiting for " + what + "; last status: " + last.dump(2) + Logs());
}

Status PairProcess::WaitRejoined(std::chrono::milliseconds timeout) {
  return WaitStatus(
      [](const Json& s) {
        return s["sync"]["state"] == "syncing" && s["regions"][0]["role"] == "standby";
      },
      timeout, "region-a to rejoin as a replica");
}

CliRun PairProcess::Cli(const std::vector<std::string>& args, int timeout_seconds) {
  std::vector<std::string> all = {"--control", control_url()};
  all.insert(all.end(), args.begin(), args.end());
  return RunCli(all, timeout_seconds);
}

}  // namespace tandem::testing
