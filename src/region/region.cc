#include "region/region.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>

#include "api/audit.h"
#include "api/auth.h"
#include "api/context.h"
#include "api/errors.h"
#include "api/http.h"
#include "api/worker_auth.h"
#include "auth/api_token.h"
#include "base/clock.h"
#include "base/fs.h"
#include "base/net.h"
#include "base/process.h"
#include "base/text.h"
#include "crypto/secret_box.h"
#include "crypto/token.h"
#include "logs/log_store.h"
#include "pg/conn.h"
#include "pg/server.h"
#include "region/dr_agent.h"
#include "region/images.h"
#include "region/task_logs.h"
#include "rpc/client.h"
#include "scheduler/bundle_cache.h"
#include "scheduler/dispatcher.h"
#include "scheduler/scheduler.h"
#include "store/audit.h"
#include "store/dr.h"
#include "store/execution.h"
#include "store/identities.h"
#include "store/migrations.h"
#include "store/pipelines.h"
#include "store/scheduling.h"
#include "store/store.h"
#include "tls/certificates.h"

namespace tandem::region {
namespace {

using namespace std::chrono_literals;

constexpr const char* kDatabase = "tandem";

std::string Fmt(Duration d) {
  char buf[32];
  snprintf(buf, sizeof buf, "%.1f s", std::chrono::duration<double>(d).count());
  return buf;
}

}  // namespace

Result<std::string> ReadSecretKey(const RegionConfig& cfg) {
  if (!cfg.secret_key.empty()) return cfg.secret_key;
  if (cfg.secret_key_file.empty()) {
    return InvalidArgument("no secret key: set secrets.key_file or secrets.key in " + cfg.path);
  }
  if (PathExists(cfg.secret_key_file)) {
    RETURN_IF_ERROR(CheckPrivateFile(cfg.secret_key_file, "the secret key file"));
  }
  auto text = ReadFile(cfg.secret_key_file);
  if (!text.ok()) {
    if (text.status().code() == Code::kNotFound) {
      return InvalidArgument("the secret key file " + cfg.secret_key_file +
                             " does not exist (create one with `tandem secret-key > FILE`)");
    }
    return text.status();
  }
  return text;
}

Region::Region(RegionConfig cfg) : cfg_(std::move(cfg)), metrics_(Labels{{"region", cfg_.name}}) {}

Region::~Region() { Stop(); }

int Region::http_port() const { return http_ ? http_->port() : 0; }

Result<std::unique_ptr<Region>> Region::Start(const RegionConfig& cfg) {
  std::unique_ptr<Region> r(new Region(cfg));
  Status s = r->StartAll();
  if (!s.ok()) {
    r->Stop();
    return s;
  }
  return r;
}

Status Region::StartAll() {
  Status dir = EnsureWritableDir(cfg_.state_dir);
  if (!dir.ok()) {
    return {dir.code(), "state directory " + cfg_.state_dir + " is not usable: " + dir.message()};
  }
  ASSIGN_OR_RETURN(std::string key_text, ReadSecretKey(cfg_));
  auto box = SecretBox::FromBase64(key_text);
  if (!box.ok()) return InvalidArgument("bad secret key: " + box.status().message());
  // Fail on a taken HTTP port before starting anything else.
  Status port = CheckPortFree(cfg_.address, cfg_.http_port);
  if (!port.ok()) return Unavailable("the region's HTTP port: " + port.message());
  if (cfg_.tls) {
    RETURN_IF_ERROR(tls::CheckServerFiles({cfg_.tls->cert_file, cfg_.tls->key_file}, {cfg_.address},
                                          cfg_.tls->ca_file));
  } else if (!IsLoopback(cfg_.address)) {
    spdlog::warn(
        "region {} serves plain HTTP on {}: anyone on that network can read its "
        "traffic and credentials (give it a tls section)",
        cfg_.name, cfg_.address);
  }

  std::string pg_password;
  if (cfg_.dr) {
    // Both regions of a pair hold the same key, and a base backup copies the roles: the
    // superuser's password is derived from the key, so either region can use either copy.
    pg_password = Sha256Hex(box->DeriveKey("tandem postgres superuser v1"));
    ASSIGN_OR_RETURN(std::string credential, rpc::InternalCredential(key_text));
    ASSIGN_OR_RETURN(dr_, DrAgent::Open(cfg_, credential, &metrics_));
    TaskLogs::Peer peer{cfg_.dr->peer.url(), credential, cfg_.address,
                        [this] { return dr_->Local().epoch; }, cfg_.trust()};
    ASSIGN_OR_RETURN(task_logs_, TaskLogs::Open(cfg_, peer, &metrics_));
    dr_->AttachTaskLogs(task_logs_.get());
  } else {
    ASSIGN_OR_RETURN(task_logs_, TaskLogs::Open(cfg_, std::nullopt, &metrics_));
  }
  RETURN_IF_ERROR(StartPostgres(pg_password));
  RETURN_IF_ERROR(ConnectAndMigrate());
  const std::string token_key = box->DeriveKey("tandem task tokens v1");
  const std::string session_key = box->DeriveKey("tandem user sessions v1");
  ASSIGN_OR_RETURN(store_, store::Store::Open(pool_.get(), std::move(box).value(), replica_));
  dr_store_ = std::make_unique<store::DrStore>(pool_.get());
  identities_ = std::make_unique<store::Identities>(pool_.get());
  workers_auth_ = std::make_unique<api::WorkerAuthenticator>(identities_.get(), &RealClock());
  audit_log_ = std::make_unique<store::AuditLog>(pool_.get());
  audit_ = std::make_unique<api::RegionAudit>(audit_log_.get(), identities_.get(),
                                              [this] { return !dr_ || dr_->MayAct(); });
  RETURN_IF_ERROR(BootstrapOwner());
  authorizer_ =
      std::make_unique<api::RegionAuthorizer>(identities_.get(), session_key, &RealClock());
  logins_ = std::make_unique<api::LoginLimiter>(&RealClock());
  session_key_ = session_key;
  RETURN_IF_ERROR(StartPipelines(token_key));

  metrics_.Describe("tandem_up", "gauge", "1 while the region agent runs.");
  metrics_.Set("tandem_up", {}, 1);
  metrics_.Describe("tandem_postgres_up", "gauge", "1 when the region's PostgreSQL answers.");
  metrics_.Describe("tandem_postgres_restarts_total", "counter",
                    "Times the region restarted its PostgreSQL after it died.");
  metrics_.Describe("tandem_schema_version", "gauge", "Schema version of the metadata database.");
  metrics_.Set("tandem_schema_version", {}, store::LatestSchemaVersion());
  metrics_.Describe("tandem_db_statements_total", "counter",
                    "Statements the region sent to PostgreSQL through its pool.");
  metrics_.OnScrape("tandem_db_statements_total", [this] {
    return std::vector<std::pair<Labels, double>>{{{}, static_cast<double>(pool_->statements())}};
  });
  metrics_.Describe("tandem_deployments", "gauge", "Live deployments in this region.");
  metrics_.OnScrape("tandem_deployments", [this] {
    auto n = store_->CountDeployments();
    return std::vector<std::pair<Labels, double>>{{{}, n.ok() ? static_cast<double>(*n) : -1}};
  });
  metrics_.OnScrape("tandem_postgres_up", [this] {
    auto st = pg_->State();
    metrics_.Set("tandem_postgres_restarts_total", {}, st.restarts);
    return std::vector<std::pair<Labels, double>>{{{}, st.running ? 1.0 : 0.0}};
  });

  if (cfg_.registry) {
    // The registry runs as the unprivileged user PostgreSQL runs as (a server storing what
    // clients upload has no business being root).
    const std::string run_as =
        cfg_.managed ? cfg_.managed->run_as : (geteuid() == 0 ? "tandem" : "");
    ASSIGN_OR_RETURN(images_, RegionImages::Start(cfg_, run_as, &metrics_));
    if (dr_) {
      images_->StartReplicator(pipelines_.get(), [this] { return dr_->MayAct(); });
      dr_->AttachImages([this] { return images_->Backlog(); });
    }
  }

  api_ctx_ = std::make_unique<api::ApiContext>();
  api_ctx_->images = images_.get();
  api_ctx_->region = cfg_.name;
  api_ctx_->store = store_.get();
  api_ctx_->metrics = &metrics_;
  api_ctx_->max_value_bytes = static_cast<size_t>(cfg_.max_value_bytes);
  api_ctx_->pipelines = pipelines_.get();
  api_ctx_->identities = identities_.get();
  api_ctx_->session_key = session_key_;
  api_ctx_->logins = logins_.get();
  api_ctx_->audit = audit_log_.get();
  api_ctx_->logs = task_logs_->store();
  api_ctx_->dispatcher = dispatcher_.get();
  api_ctx_->workers = workers_auth_.get();
  api_ctx_->bundles = bundles_.get();
  api_ctx_->wake_scheduler = [this] { scheduler_->Wake(); };
  api_ctx_->scheduler_heartbeat = [this]() -> std::optional<std::string> {
    std::optional<WallTime> t = scheduler_->last_pass();
    if (!t) return std::nullopt;
    return dag::FormatTimeZ(std::chrono::floor<std::chrono::seconds>(*t));
  };
  api_ctx_->readiness = [this]() -> api::Readiness {
    auto c = pool_->Acquire(2s);
    if (!c.ok()) return {false, c.status().message()};
    auto v = store::SchemaVersion(**c);
    if (!v.ok()) return {false, v.status().message()};
    if (*v != store::LatestSchemaVersion()) {
      return {false, "schema at version " + std::to_string(*v) + ", expected " +
                         std::to_string(store::LatestSchemaVersion())};
    }
    return {true, "PostgreSQL reachable, schema at version " + std::to_string(*v)};
  };
  router_ = std::make_unique<api::Router>();
  router_->set_authorizer(
      [this](api::Request& req, auth::Need need) { return authorizer_->Check(req, need); });
  api::RegisterAllRoutes(*router_, *api_ctx_);
  // Users' requests take at most three quarters of the database connections at once, so the
  // scheduler, the dispatcher and the workers' claims and reports always find one.
  router_->set_user_limit(std::max(1, cfg_.pool_size * 3 / 4), std::chrono::seconds(10));
  api::ServerOptions so{cfg_.address, cfg_.http_port, cfg_.http_threads,
                        static_cast<size_t>(cfg_.max_body_bytes)};
  if (cfg_.tls) {
    so.tls_cert_file = cfg_.tls->cert_file;
    so.tls_key_file = cfg_.tls->key_file;
  }
  so.host_prefix = [this](const std::string& host) { return HostPrefix(host); };
  so.after = [this](const api::Request& req, const api::Response& res) {
    audit_->Record(req, res);
  };
  if (dr_) {
    dr_->RegisterRoutes(*router_);
    // The control plane's part of the trail (DR actions, and refusals on its API), written by
    // the active region into the replicated trail.
    router_->Add("POST", "/internal/v1/audit",
                 api::Wrap([this](const api::Request& req) -> Result<api::Response> {
                   RETURN_IF_ERROR(dr_->CheckCredential(req));
                   ASSIGN_OR_RETURN(store::AuditEvent e, api::AuditEventFromWire(req.body));
                   if (!dr_->MayAct()) {
                     return Unavailable("region " + cfg_.name +
                                        " is not active: the trail is written by the active "
                                        "region");
                   }
                   RETURN_IF_ERROR(audit_log_->Append(e));
                   return api::Response{204, ""};
                 }));
    so.admit = [this](const api::Request& req) { return dr_->Admit(req); };
  }
  ASSIGN_OR_RETURN(http_, api::HttpServer::Start(so, router_.get(), &metrics_));
  // Named by what no other live region on this machine shares, its name and bound port, so a
  // region started again finds what its killed workers left (each worker empties its own).
  {
    const char* tmp = getenv("TMPDIR");
    task_root_ = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/tandem-tasks-" +
                 cfg_.name + "-" + std::to_string(http_->port());
  }

  scheduler_->Start();
  {
    std::lock_guard lock(mu_);
    workers_.resize(cfg_.local_workers);
    worker_retry_at_.assign(cfg_.local_workers, MonoTime{});
    // In a pair the DR agent starts them once the region holds the lease.
    workers_wanted_ = !dr_;
  }
  if (!dr_) {
    for (size_t i = 0; i < static_cast<size_t>(cfg_.local_workers); ++i) {
      RETURN_IF_ERROR(StartLocalWorker(i));
    }
  }
  supervisor_ = std::thread([this] { Supervise(); });
  if (dr_) {
    dr_->Start(pg_.get(), dr_store_.get(),
               {.workers = [this](bool wanted) { SetWorkersWanted(wanted); },
                .wake_claims = [this] { dispatcher_->NotifyWork(); }});
  }
  spdlog::info("region {} ready on {}://{}:{}", cfg_.name, cfg_.tls ? "https" : "http",
               cfg_.address, http_->port());
  return Status::Ok();
}

Status Region::StartPostgres(const std::string& pg_password) {
  if (cfg_.external_dsn) {
    ASSIGN_OR_RETURN(pg_, pg::NewExternalServer(*cfg_.external_dsn));
    return Status::Ok();
  }
  const ManagedPostgres& m = *cfg_.managed;
  pg::LocalServerOptions o;
  o.data_dir = cfg_.state_dir + "/pg/data";
  o.bin_dir = m.bin_dir;
  o.host = cfg_.address;
  o.port = m.port;
  o.run_as = m.run_as;
  o.replication_from = cfg_.peers;
  o.shared_buffers = m.shared_buffers;
  o.max_connections = m.max_connections;
  o.password = pg_password;
  if (cfg_.tls) {
    o.tls_cert_file = cfg_.tls->cert_file;
    o.tls_key_file = cfg_.tls->key_file;
    o.tls_ca_file = cfg_.tls->ca_file;
  }
  const auto timeout = std::chrono::seconds(cfg_.connect_timeout_seconds);
  if (!dr_) {
    ASSIGN_OR_RETURN(pg_, pg::NewLocalServer(o));
    RETURN_IF_ERROR(pg_->Init());
    return pg_->Start(timeout);
  }
  DrLocalState st = dr_->StartState();
  spdlog::info("region {} starts as {} (epoch {}, promised {})", cfg_.name, st.role, st.epoch,
               st.promised);
  if (st.role == "active" || st.role == "stepped_down") {
    ASSIGN_OR_RETURN(pg_, pg::NewLocalServer(o));
    RETURN_IF_ERROR(pg_->Init());
    return pg_->Start(timeout);
  }
  replica_ = true;
  o.upstream = dr_->PeerUpstream();
  ASSIGN_OR_RETURN(pg_, pg::NewLocalServer(o));
  if (st.role == "fenced" || st.role == "rejoining") {
    RETURN_IF_ERROR(pg_->Init());  // the cluster exists; this reads its password
    return dr_->RejoinAtStart(pg_.get());
  }
  // A standby: a base backup of the peer the first time, then streaming from it. The peer may
  // still be starting: retry until the connect timeout.
  const auto deadline = RealClock().Now() + timeout;
  Backoff backoff(500ms, 5s);
  while (true) {
    Status s = pg_->InitReplica(*o.upstream, timeout);
    if (s.ok()) break;
    if (RealClock().Now() >= deadline) return s.WithContext("base backup of " + cfg_.dr->peer.name);
    spdlog::warn("base backup of {}: {}; retrying", cfg_.dr->peer.name, s.message());
    RealClock().SleepFor(backoff.Next());
  }
  return pg_->Start(timeout);
}

void Region::SetWorkersWanted(bool wanted) {
  {
    std::lock_guard lock(mu_);
    workers_wanted_ = wanted;
    if (wanted) {
      stopping_workers_ = false;
      std::fill(worker_retry_at_.begin(), worker_retry_at_.end(), MonoTime{});
      supervise_now_ = true;
    }
  }
  if (wanted) {
    cv_.notify_all();  // the supervisor starts them, now
    return;
  }
  std::vector<std::unique_ptr<Child>> workers;
  {
    std::lock_guard lock(mu_);
    for (auto& w : workers_) workers.push_back(std::move(w));
  }
  for (auto& w : workers) {
    if (w) w->Stop(SIGKILL, 1s);  // their tasks die with them (tandem-task-exec)
  }
}

// The platform's first owner: the token in secrets.owner_token_file, stored when the metadata
// has no principal at all (the first start of the primary; a replica reads what it stored).
Status Region::BootstrapOwner() {
  if (cfg_.owner_token_file.empty() || replica_) return Status::Ok();
  RETURN_IF_ERROR(CheckPrivateFile(cfg_.owner_token_file, "secrets.owner_token_file"));
  Result<std::string> text = ReadFile(cfg_.owner_token_file);
  if (!text.ok()) {
    return InvalidArgument("secrets.owner_token_file " + cfg_.owner_token_file +
                           " cannot be read: " + text.status().message());
  }
  Result<auth::TokenParts> t = auth::ParseToken(TrimSpace(*text));
  if (!t.ok()) {
    return InvalidArgument("secrets.owner_token_file " + cfg_.owner_token_file +
                           " does not hold a tandem token (the file's content is not shown)");
  }
  ASSIGN_OR_RETURN(bool stored, identities_->Bootstrap(*t));
  if (stored) spdlog::info("the platform's first owner is the token in {}", cfg_.owner_token_file);
  return Status::Ok();
}

Status Region::StartPipelines(const std::string& token_key) {
  pipelines_ = std::make_unique<store::Pipelines>(pool_.get());
  scheduling_ = std::make_unique<store::Scheduling>(pool_.get());
  execution_ = std::make_unique<store::Execution>(pool_.get());
  tokens_ = std::make_unique<TokenSigner>(token_key);
  bundles_ = std::make_unique<scheduler::BundleCache>(pipelines_.get(), 256);
  scheduler::DispatcherOptions dopts;
  dopts.heartbeat_ms = cfg_.heartbeat_ms;
  dopts.token_ttl = std::chrono::seconds(cfg_.task_token_ttl_seconds);
  dopts.task_uid_base = cfg_.task_uid_base;
  if (dr_) dopts.may_start = [this] { return dr_->MayAct(); };
  dispatcher_ = std::make_unique<scheduler::Dispatcher>(
      execution_.get(), store_.get(), bundles_.get(), task_logs_->store(), tokens_.get(),
      &RealClock(), dopts, [this] { scheduler_->Wake(); });
  scheduler::SchedulerOptions sopts;
  if (dr_) sopts.may_act = [this] { return dr_->MayAct(); };
  // Workers are lost after three silent heartbeats; give them that and a margin to be heard.
  sopts.reap_hold = std::chrono::milliseconds(3 * cfg_.heartbeat_ms + 2000);
  scheduler_ = std::make_unique<scheduler::Scheduler>(scheduling_.get(), &RealClock(), &metrics_,
                                                      sopts, [this] { dispatcher_->NotifyWork(); });
  return Status::Ok();
}

// REQUIRES: mu_ not held.
Status Region::StartLocalWorker(size_t index) {
  char exe[4096] = {};
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return Internal("cannot find the tandem binary to start workers from");
  SpawnOptions o;
  o.argv = {
      std::string(exe, static_cast<size_t>(n)),
      "worker",
      "--api",
      (cfg_.tls ? "https://" : "http://") + cfg_.address + ":" + std::to_string(http_->port()),
      "--slots",
      std::to_string(cfg_.worker_slots),
      "--grace-ms",
      "2000",
      "--task-nice",
      std::to_string(cfg_.task_nice)};
  if (cfg_.tls && !cfg_.tls->ca_file.empty()) {
    o.argv.insert(o.argv.end(), {"--ca-file", cfg_.tls->ca_file});
  }
  o.argv.insert(o.argv.end(), {"--task-dir", task_root_ + "/" + std::to_string(index)});
  o.output_path = cfg_.state_dir + "/worker-" + std::to_string(index) + ".log";
  o.env_extra["TANDEM_WORKER_TOKEN"] = workers_auth_->local_credential();
  // Workers die with the region (the supervisor thread starts them), and their tasks with them.
  o.death_signal = SIGKILL;
  auto child = Child::Spawn(o);
  if (!child.ok())
    return child.status().WithContext("starting local worker " + std::to_string(index));
  spdlog::info("local worker {} started (pid {}, {} slots)", index, (*child)->pid(),
               cfg_.worker_slots);
  std::lock_guard lock(mu_);
  if (stopping_workers_ || !workers_wanted_ || index >= workers_.size()) {
    (*child)->Stop(SIGTERM, 5s);  // Stop() began meanwhile
    return Status::Ok();
  }
  workers_[index] = std::move(child).value();
  return Status::Ok();
}

void Region::StopLocalWorkers() {
  std::vector<std::unique_ptr<Child>> workers;
  {
    std::lock_guard lock(mu_);
    stopping_workers_ = true;
    workers.swap(workers_);
  }
  for (auto& w : workers) {
    if (w) w->Signal(SIGTERM);
  }
  for (auto& w : workers) {
    if (w) w->Stop(SIGTERM, 5s);
  }
}

Result<std::string> Region::HostPrefix(const std::string& host) const {
  const std::string suffix = "." + cfg_.zone;
  if (host.size() <= suffix.size() ||
      host.compare(host.size() - suffix.size(), suffix.size(), suffix) != 0) {
    return std::string();  // an address or another name: paths say what they want
  }
  // By name, a client wants the active region; a standby (or a fenced old primary) says where
  // that is rather than answer from its replica.
  if (dr_) RETURN_IF_ERROR(dr_->ServesHostNames(host));
  std::string label = host.substr(0, host.size() - suffix.size());
  // api.<zone>: the active region's own API, every path as sent (namespaces always end in a
  // "-" and six hex digits, so no deployment has this name).
  if (label == "api") return std::string();
  // <namespace>.<zone> serves the deployment's API; <namespace>-exec.<zone> its Execution API.
  const std::string exec = "-exec";
  if (label.size() > exec.size() &&
      label.compare(label.size() - exec.size(), exec.size(), exec) == 0) {
    label.resize(label.size() - exec.size());
  }
  Result<DeploymentId> d = store_->FindByNamespace(label);
  if (!d.ok()) {
    if (d.status().code() == Code::kNotFound) {
      return NotFound("no deployment has the hostname " + host + " in region " + cfg_.name);
    }
    return d.status();
  }
  return "/deployments/" + d->value();
}

// Reaches PostgreSQL (retrying with backoff, saying so), creates the region's database on a
// managed server, and applies migrations.
Status Region::ConnectAndMigrate() {
  const std::string dsn = pg_->Dsn(kDatabase);
  const pg::ConnOptions quick = {{"connect_timeout", "3"}};
  const auto deadline = RealClock().Now() + std::chrono::seconds(cfg_.connect_timeout_seconds);
  Backoff backoff(200ms, 5s);
  pg::ConnPtr conn;
  while (true) {
    if (cfg_.managed && !replica_) {
      auto admin = pg::Conn::Connect(pg_->Dsn("postgres"), quick);
      if (admin.ok()) {
        auto exists = (*admin)->Exec("SELECT 1 FROM pg_database WHERE datname = $1", {kDatabase});
        if (exists.ok() && exists->size() == 0) {
          RETURN_IF_ERROR((*admin)->ExecScript(std::string("CREATE DATABASE ") + kDatabase));
        }
      }
    }
    auto c = pg::Conn::Connect(dsn, quick);
    if (c.ok()) {
      conn = std::move(c).value();
      break;
    }
    Duration wait = backoff.Next();
    if (RealClock().Now() + wait > deadline) {
      return Unavailable(
          "PostgreSQL unreachable for " + std::to_string(cfg_.connect_timeout_seconds) +
          " s (postgres.connect_timeout_seconds); last error: " + c.status().message());
    }
    spdlog::warn("PostgreSQL unreachable ({}); retrying in {}", c.status().message(), Fmt(wait));
    RealClock().SleepFor(wait);
  }
  if (replica_) {
    ASSIGN_OR_RETURN(int version, store::SchemaVersion(*conn));
    spdlog::info("replica of {}: metadata schema at version {}", cfg_.dr->peer.name, version);
  } else {
    ASSIGN_OR_RETURN(int version, store::Migrate(*conn));
    spdlog::info("metadata schema at version {}", version);
  }
  pool_ = std::make_unique<pg::Pool>(pg_->Dsn(kDatabase), cfg_.pool_size, pg::ServingOptions());
  return Status::Ok();
}

void Region::Supervise() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, 500ms, [this] { return stopping_ || supervise_now_; });
    if (stopping_) break;
    supervise_now_ = false;
    // A local worker that died is restarted, with a pause so a crashing one does not spin.
    for (size_t i = 0; i < workers_.size() && workers_wanted_; ++i) {
      if (workers_[i]) {
        std::optional<ExitInfo> e = workers_[i]->Poll();
        if (!e) continue;
        spdlog::warn("local worker {} exited ({}); restarting it", i, e->Describe());
        workers_[i].reset();
        worker_retry_at_[i] = RealClock().Now() + 1s;
      }
      if (RealClock().Now() < worker_retry_at_[i]) continue;
      lock.unlock();
      Status w = StartLocalWorker(i);
      lock.lock();
      if (!w.ok()) {
        spdlog::error("{}", w.ToString());
        worker_retry_at_[i] = RealClock().Now() + 5s;
      }
    }
    lock.unlock();
    Status s = pg_->Supervise();
    if (!s.ok()) spdlog::error("PostgreSQL supervision: {}", s.ToString());
    if (images_) images_->Supervise();
    lock.lock();
  }
}

void Region::Stop() {
  if (dr_) dr_->Stop();
  // Workers first (their tasks are killed; the tries are retried when a region is back), then
  // the scheduler, then HTTP.
  StopLocalWorkers();
  if (!task_root_.empty()) (void)RemoveAll(task_root_);
  if (scheduler_) scheduler_->Stop();
  // HTTP first: requests in flight finish against a running PostgreSQL. (A PostgreSQL the
  // supervisor restarted gets its parent-death signal when that thread ends, so the
  // supervisor must end after HTTP, not before.)
  if (http_) http_->Stop();
  http_.reset();
  if (task_logs_) task_logs_->Stop();
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (supervisor_.joinable()) supervisor_.join();
  if (images_) images_->Stop();  // after the supervisor, which would start it again
  scheduler_.reset();
  dispatcher_.reset();
  bundles_.reset();
  pipelines_.reset();
  scheduling_.reset();
  execution_.reset();
  dr_store_.reset();
  store_.reset();
  pool_.reset();
  if (pg_) (void)pg_->Stop();
  pg_.reset();
}

}  // namespace tandem::region
