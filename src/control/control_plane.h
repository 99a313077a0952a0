// The control plane process (`tandem control`): knows the pair, holds the epoch, grants
// leases, checks both regions' health, runs failover and failback as a durable state machine,
// records every event, and serves the DR API (/api/v1/dr/...) and /metrics.
//
// Threads: the HTTP server's, a monitor thread (health checks every health_interval, status,
// events on changes, rejoin requests for a region left behind, automatic failover, the DNS
// zone kept pointing at the active region and its server kept running), and one operation
// thread while a failover or failback runs. Its state is in SQLite (ControlStore),
// so a restart resumes or rolls back an operation it was running.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/metrics.h"
#include "base/status.h"
#include "control/audit_forwarder.h"
#include "control/dns_zone.h"
#include "control/region_link.h"
#include "tls/certificates.h"

namespace tandem::api {
class Router;
class HttpServer;
struct Request;
struct Response;
}  // namespace tandem::api
namespace tandem::dr {
class Voter;
}

namespace tandem::control {

class ControlStore;
class Failover;
class RemoteAuthorizer;
struct OperationRow;

struct RegionEndpoint {
  std::string name;
  std::string url;  // "http://address:port" of its agent
  bool original_primary = false;
};

// Plain settings, from the pair config (app builds them).
struct ControlSettings {
  std::string pair;
  std::string address;
  int http_port = 0;
  std::string state_dir;
  std::string secret_key;               // base64
  std::vector<RegionEndpoint> regions;  // exactly two
  std::string mode = "asynchronous";
  bool automatic_failover = false;
  Duration health_interval = std::chrono::milliseconds(250);
  int detection_misses = 8;
  Duration lease = std::chrono::milliseconds(3000);
  Duration drain_timeout = std::chrono::seconds(60);
  Duration planned_timeout = std::chrono::seconds(120);
  int http_threads = 64;  // connections served at once, a thread each
  // The platform zone's host names (dns.enabled): the DNS server, the key, the addresses.
  DnsSettings dns;
  // A named step at which the process exits at once (tests of a control plane killed during a
  // failover): from TANDEM_FAILPOINT. Empty: none.
  std::string failpoint;
  // HTTPS: the certificate and key its API serves (both empty: plain HTTP), and what its calls
  // to the regions trust.
  std::string tls_cert_file;
  std::string tls_key_file;
  tls::Trust trust;
};

// What the status endpoint, the CLI and /metrics show.
struct PairStatus {
  std::string summary;  // "Active: region-a (primary)" / "Active: region-b (failed over from ...)"
  std::string active, standby, original_primary;
  int64_t epoch = 0;
  std::string state;   // syncing, resyncing, degraded, broken
  std::string detail;  // a sentence about the state
  int64_t lag_bytes = -1;
  double lag_seconds = -1;
  double rpo_seconds = -1;  // what a forced failover would lose now; -1 unknown
  double commit_ms = 0;
  bool synchronous_degraded = false;  // synchronous mode, but the active commits asynchronously
  // The parts of rpo_seconds: the metadata's replay lag and the age of the oldest task log
  // chunk the standby lacks (rpo_seconds is the worse of the two).
  double rpo_metadata_seconds = -1;
  double rpo_logs_seconds = -1;
  // Task logs and images the standby does not hold yet (from the active region's last state).
  uint64_t log_chunks_behind = 0;
  uint64_t log_bytes_behind = 0;
  double log_lag_p50_s = 0;
  double log_lag_p99_s = 0;
  std::string log_error;
  int64_t images_unreplicated = 0;
  std::string images_error;
  // The platform zone (dns.enabled): whether it points at the active region, and why not.
  bool dns_enabled = false;
  bool dns_current = false;
  int64_t dns_records = 0;
  std::string dns_error;
};

class ControlPlane {
 public:
  static Result<std::unique_ptr<ControlPlane>> Start(ControlSettings s);
  ~ControlPlane();
  void Stop();
  int http_port() const;

 private:
  explicit ControlPlane(ControlSettings s);
  Status StartAll();
  void MonitorLoop();
  void CheckOnce();
  PairStatus ComputeStatus();
  std::string StatusJson();
  void Converge();
  void MaybeAutomaticFailover();
  // The records the zone should hold with `active` active: its deployments' namespaces from
  // its last view, else those last published.
  std::map<std::string, std::string> DesiredRecords(const std::string& active);
  Status PublishDns(const std::string& active);
  // Monitor: restarts a DNS server that died (zone rebuilt from the store) and publishes what
  // changed, backing off after failures.
  void SyncDns();
  // Starts an operation on the operation thread, recorded as asked for by `started_by`; the row
  // as begun.
  Result<OperationRow> StartOperation(const std::string& kind, const std::string& mode,
                                      bool fall_through, bool declare_dead,
                                      const std::string& started_by);
  void RunOperation(const OperationRow& op, bool resume);
  void OnStep(const OperationRow& op, const std::string& message);
  void Event(const std::string& kind, const std::string& region, const std::string& message,
             int64_t operation = 0);
  void RegisterRoutes();
  // The audit trail: a request's event (a DR action, or a refusal), and an operation's end.
  void AuditRequest(const api::Request& req, const api::Response& res);
  // `detail_json`: a JSON object of what the operation did (its RTO, the loss).
  void AuditOperation(const OperationRow& op, const std::string& state, int status,
                      const std::string& detail_json);
  // Delivers an event to the active region's trail (AuditForwarder::Send).
  Status SendAudit(const std::string& event);
  Status CheckCredential(const api::Request& req) const;
  RegionLink* Link(const std::string& name);
  std::optional<RegionView> LastView(const std::string& name);

  const ControlSettings s_;
  std::string credential_;
  MetricsRegistry metrics_;
  std::unique_ptr<ControlStore> store_;
  std::unique_ptr<dr::Voter> voter_;
  std::unique_ptr<RemoteAuthorizer> authorizer_;  // every request but the open and pair ones
  std::map<std::string, std::unique_ptr<RegionLink>> links_;
  std::unique_ptr<Failover> failover_;
  std::unique_ptr<DnsZone> dns_;
  std::unique_ptr<api::Router> router_;
  std::unique_ptr<api::HttpServer> http_;
  std::unique_ptr<AuditForwarder> audit_;

  struct Health {
    std::optional<RegionView> view;  // the last answer
    std::optional<MonoTime> last_seen;
    int misses = 0;
    bool lost = false;  // missed detection_misses checks in a row
    std::string last_error;
    std::string last_resync_detail;  // to record each rejoin's outcome once
    std::optional<MonoTime> last_rejoin_ask;
  };
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Health> health_;  // guarded by mu_
  std::string last_state_;                // guarded by mu_: to record state changes as events
  bool stopping_ = false;                 // guarded by mu_
  bool op_running_ = false;               // guarded by mu_
  // Who started each operation this process began (for the event of its end); an operation
  // not here was begun by the automatic failover or before a restart.
  std::string dns_error_;                 // guarded by mu_: the last failed DNS publish
  std::optional<MonoTime> dns_retry_at_;  // guarded by mu_
  int dns_failures_ = 0;                  // guarded by mu_
  std::thread monitor_, op_thread_;
};

}  // namespace tandem::control
