// A whole region pair for end-to-end tests: `tandem control` and two `tandem region` processes
// (region-a primary, region-b standby) started from one generated pair config in a temporary
// directory, on 127.0.0.1 and free ports, each region with its own managed PostgreSQL and a
// registry section on a free port.
// Everything is stopped by PID in the destructor, even when the test fails; every process
// also dies with the test process (death signal), so an aborted test leaves nothing behind.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "base/process.h"
#include "base/status.h"
#include "harness/region_harness.h"

namespace tandem::testing {

class PairProcess {
 public:
  struct Options {
    std::string mode = "asynchronous";
    bool automatic_failover = false;
    int health_interval_ms = 200;
    int detection_misses = 5;
    int lease_ms = 2000;
    int lease_renew_ms = 400;
    int lease_margin_ms = 400;
    int drain_timeout_seconds = 10;
    int planned_timeout_seconds = 30;
    int synchronous_degrade_after_ms = 3000;
    // pair.image_replication_timeout_seconds: how long a deploy waits for the standby's
    // registry; 0 leaves it out of the pair file (the default applies).
    int image_replication_timeout_seconds = 0;
    int local_workers = 1;
    int worker_slots = 32;
    // Each part on its own loopback address (127.N.M.1 control, .2 region-a, .3 region-b), so
    // that Cut() can drop the traffic between two of them; otherwise all on 127.0.0.1.
    bool own_addresses = false;
    // A dns section: the control plane keeps the platform zone's names pointing at the active
    // region, on a DNS server at the control plane's address. Needs own_addresses (host names
    // carry no port, so both regions then serve HTTP on one port, each on its own address).
    bool dns = false;
    // dns.managed false: the test runs the DNS server itself (at dns_address():dns_port()), and
    // the control plane signs its updates with this key (base64), written to a file.
    bool dns_external = false;
    std::string dns_tsig_secret;
    // A tls section: a CA of the test's own (ca_file()) and a certificate per part; every
    // listener serves HTTPS, and Http() and Cli() trust that CA (SetTestCaFile).
    bool tls = false;
  };

  static Result<std::unique_ptr<PairProcess>> Create(Options o);
  ~PairProcess();

  // Starts the control plane, region-a, then region-b, and waits until the pair is syncing.
  Status StartAll();
  // `failpoint`: TANDEM_FAILPOINT for the control plane (a step at which it exits).
  Status StartControl(const std::string& failpoint = "");
  Status StartRegion(const std::string& name, bool wait_ready = true);
  void KillControl(int sig);
  // Signals the region agent; with SIGKILL also its PostgreSQL and its registry (the whole
  // region is lost).
  void KillRegion(const std::string& name, int sig);
  bool ControlRunning();

  // Drops all traffic between two parts ("control", "region-a", "region-b"), both ways, with
  // nftables rules in a table of this test's own (needs own_addresses and root). Heal() removes
  // them; the destructor does too.
  Status Cut(const std::string& x, const std::string& y);
  void Heal();

  std::string control_url() const;
  std::string region_url(const std::string& name) const;
  std::string region_dir(const std::string& name) const { return dir_ + "/" + name; }
  const std::string& dir() const { return dir_; }
  std::string pair_file() const { return dir_ + "/pair.yaml"; }
  std::string tmp_dir() const { return dir_ + "/tmp"; }  // its processes' TMPDIR
  std::string Log(const std::string& process) const;     // control, region-a, region-b
  std::string Logs() const;                              // all three, for failure messages
  pid_t PostgresPid(const std::string& name) const;
  std::string Dsn(const std::string& name) const;
  int pg_port(const std::string& name) const { return pg_ports_.at(name); }
  int registry_port(const std::string& name) const { return registry_ports_.at(name); }
  // "http://<address>:<registry port>" of region `name` (https with Options::tls).
  std::string registry_url(const std::string& name) const;
  // With Options::tls: the CA every part's certificate chains to, alone in its directory.
  std::string ca_file() const { return dir_ + "/ca/ca.crt"; }
  const std::string& address(const std::string& part) const { return addresses_.at(part); }
  int http_port(const std::string& name) const { return http_ports_.at(name); }
  int control_port() const { return control_port_; }
  // The DNS server of Options::dns: the control plane's address and a port of its own.
  const std::string& dns_address() const { return addresses_.at("control"); }
  int dns_port() const { return dns_port_; }
  // Where the control plane keeps its Knot DNS (managed).
  std::string dns_dir() const { return dir_ + "/control/dns"; }

  // GET /api/v1/dr/status (null when the control plane does not answer).
  nlohmann::json DrStatus();
  // Polls the status until `ok(status)` or the timeout; the last status in the error.
  Status WaitStatus(const std::function<bool(const nlohmann::json&)>& ok,
                    std::chrono::milliseconds timeout, const std::string& what);
  // Until region-a (the pair's first region) is a standby again and the pair is syncing: an old
  // primary that came back and rejoined as a replica.
  Status WaitRejoined(std::chrono::milliseconds timeout);
  // `tandem --control URL ARGS...`
  CliRun Cli(const std::vector<std::string>& args, int timeout_seconds = 120);
  // Restarts the control plane with `failpoint`, starts a planned failover once the pair is
  // syncing, waits for the control plane to exit at that step, and starts it again (without).
  Status FailoverStoppingAt(const std::string& failpoint);

 private:
  PairProcess() = default;
  Options o_;
  std::string dir_;
  int control_port_ = 0;
  int dns_port_ = 0;
  std::map<std::string, int> http_ports_, pg_ports_, registry_ports_;
  std::map<std::string, std::string> addresses_;  // control, region-a, region-b
  std::string nft_table_;                         // set while a cut is in place
  ChildPtr control_;
  std::map<std::string, ChildPtr> regions_;
};

// Runs `nft ARGS...` (the cuts between the pair's parts, and benchmarks' own rules); an error
// carries nft's output.
Status Nft(const std::vector<std::string>& args);

}  // namespace tandem::testing
