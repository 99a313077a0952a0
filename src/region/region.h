// The region agent: wires one cluster together and keeps it running.
//
// Lifecycle: Start() checks the state directory and the secret key, brings up PostgreSQL
// (managed: init + start; external: connect, retrying with backoff up to
// postgres.connect_timeout_seconds), applies migrations, opens the store, and starts the HTTP
// server; a supervisor thread restarts a managed PostgreSQL that dies. Stop() undoes it all in
// reverse order and is idempotent. Every step's failure is a Status with a sentence for the
// operator; nothing started before a failed step is left running.
//
// Thread-safety: Start/Stop from one thread; the HTTP server's threads use the store.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/metrics.h"
#include "base/status.h"
#include "region/config.h"

namespace tandem::pg {
class Server;
class Pool;
}  // namespace tandem::pg
namespace tandem::store {
class Store;
class Pipelines;
class Scheduling;
class Execution;
class DrStore;
class Identities;
class AuditLog;
}  // namespace tandem::store
namespace tandem::logs {
class LogStore;
}
namespace tandem::scheduler {
class BundleCache;
class Scheduler;
class Dispatcher;
}  // namespace tandem::scheduler
namespace tandem {
class TokenSigner;
class Child;
}  // namespace tandem
namespace tandem::api {
class Router;
class HttpServer;
class RegionAuthorizer;
class WorkerAuthenticator;
class LoginLimiter;
class RegionAudit;
struct ApiContext;
}  // namespace tandem::api

namespace tandem::region {

class DrAgent;
class TaskLogs;
class RegionImages;

class Region {
 public:
  static Result<std::unique_ptr<Region>> Start(const RegionConfig& cfg);
  ~Region();
  void Stop();

  int http_port() const;
  const RegionConfig& config() const { return cfg_; }

 private:
  explicit Region(RegionConfig cfg);
  Status StartAll();
  Status StartPostgres(const std::string& pg_password);
  Status ConnectAndMigrate();
  void SetWorkersWanted(bool wanted);
  Status StartPipelines(const std::string& token_key);
  Status BootstrapOwner();
  Status StartLocalWorker(size_t index);
  void StopLocalWorkers();
  void Supervise();
  // The path prefix for a request's Host header (see api::ServerOptions::host_prefix).
  Result<std::string> HostPrefix(const std::string& host) const;

  const RegionConfig cfg_;
  MetricsRegistry metrics_;
  std::unique_ptr<DrAgent> dr_;  // in a pair only
  // Where the local workers keep their tasks' directories, one directory each; set once HTTP
  // listens.
  std::string task_root_;
  bool replica_ = false;  // its PostgreSQL started as a replica (pair standby)
  std::unique_ptr<pg::Server> pg_;
  std::unique_ptr<pg::Pool> pool_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<store::Pipelines> pipelines_;
  std::unique_ptr<store::Scheduling> scheduling_;
  std::unique_ptr<store::Execution> execution_;
  std::unique_ptr<store::DrStore> dr_store_;
  std::unique_ptr<TaskLogs> task_logs_;
  std::unique_ptr<RegionImages> images_;  // when the config declares a registry
  std::unique_ptr<TokenSigner> tokens_;
  std::unique_ptr<scheduler::BundleCache> bundles_;
  std::unique_ptr<scheduler::Dispatcher> dispatcher_;
  std::unique_ptr<scheduler::Scheduler> scheduler_;
  std::unique_ptr<store::Identities> identities_;
  std::unique_ptr<api::RegionAuthorizer> authorizer_;
  std::unique_ptr<api::WorkerAuthenticator> workers_auth_;
  std::unique_ptr<api::LoginLimiter> logins_;
  std::unique_ptr<store::AuditLog> audit_log_;
  std::unique_ptr<api::RegionAudit> audit_;
  std::string session_key_;
  std::unique_ptr<api::ApiContext> api_ctx_;
  std::unique_ptr<api::Router> router_;
  std::unique_ptr<api::HttpServer> http_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
  std::thread supervisor_;
  // Local workers, restarted by the supervisor when they die; slots stay null between tries.
  std::vector<std::unique_ptr<Child>> workers_;  // guarded by mu_
  std::vector<MonoTime> worker_retry_at_;        // guarded by mu_
  bool stopping_workers_ = false;                // guarded by mu_
  // A standalone region always runs its local workers; in a pair, only while it acts as the
  // primary (the DR agent says when).
  bool workers_wanted_ = true;  // guarded by mu_
  // Guarded by mu_: the supervisor goes round at once rather than at its next tick (workers
  // just became wanted: a promoted region starts them without waiting up to half a second).
  bool supervise_now_ = false;
};

// Reads the secret key the config names: the key file's contents or the inline key.
Result<std::string> ReadSecretKey(const RegionConfig& cfg);

}  // namespace tandem::region
