#include "region/region.h"

#include <spdlog/spdlog.h>

#include "api/context.h"
#include "api/http.h"
#include "base/clock.h"
#include "base/fs.h"
#include "base/net.h"
#include "crypto/secret_box.h"
#include "pg/conn.h"
#include "pg/server.h"
#include "store/migrations.h"
#include "store/store.h"

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

Region::Region(RegionConfig cfg)
    : cfg_(std::move(cfg)), metrics_(Labels{{"region", cfg_.name}}) {}

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

  RETURN_IF_ERROR(StartPostgres());
  RETURN_IF_ERROR(ConnectAndMigrate());
  ASSIGN_OR_RETURN(store_, store::Store::Open(pool_.get(), std::move(box).value()));

  metrics_.Describe("tandem_up", "gauge", "1 while the region agent runs.");
  metrics_.Set("tandem_up", {}, 1);
  metrics_.Describe("tandem_postgres_up", "gauge", "1 when the region's PostgreSQL answers.");
  metrics_.Describe("tandem_postgres_restarts_total", "counter",
                    "Times the region restarted its PostgreSQL after it died.");
  metrics_.Describe("tandem_schema_version", "gauge", "Schema version of the metadata database.");
  metrics_.Set("tandem_schema_version", {}, store::LatestSchemaVersion());
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

  api_ctx_ = std::make_unique<api::ApiContext>();
  api_ctx_->region = cfg_.name;
  api_ctx_->store = store_.get();
  api_ctx_->metrics = &metrics_;
  api_ctx_->max_value_bytes = static_cast<size_t>(cfg_.max_value_bytes);
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
  api::RegisterAllRoutes(*router_, *api_ctx_);
  api::ServerOptions so{cfg_.address, cfg_.http_port, cfg_.http_threads,
                        static_cast<size_t>(cfg_.max_body_bytes)};
  ASSIGN_OR_RETURN(http_, api::HttpServer::Start(so, router_.get(), &metrics_));

  supervisor_ = std::thread([this] { Supervise(); });
  spdlog::info("region {} ready on http://{}:{}", cfg_.name, cfg_.address, http_->port());
  return Status::Ok();
}

Status Region::StartPostgres() {
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
  ASSIGN_OR_RETURN(pg_, pg::NewLocalServer(o));
  RETURN_IF_ERROR(pg_->Init());
  return pg_->Start(std::chrono::seconds(cfg_.connect_timeout_seconds));
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
    if (cfg_.managed) {
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
      return Unavailable("PostgreSQL unreachable for " +
                         std::to_string(cfg_.connect_timeout_seconds) +
                         " s (postgres.connect_timeout_seconds); last error: " +
                         c.status().message());
    }
    spdlog::warn("PostgreSQL unreachable ({}); retrying in {}", c.status().message(), Fmt(wait));
    RealClock().SleepFor(wait);
  }
  ASSIGN_OR_RETURN(int version, store::Migrate(*conn));
  spdlog::info("metadata schema at version {}", version);
  pool_ = std::make_unique<pg::Pool>(pg_->Dsn(kDatabase), cfg_.pool_size, pg::ServingOptions());
  return Status::Ok();
}

void Region::Supervise() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, 500ms, [this] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    Status s = pg_->Supervise();
    if (!s.ok()) spdlog::error("PostgreSQL supervision: {}", s.ToString());
    lock.lock();
  }
}

void Region::Stop() {
  // HTTP first: requests in flight finish against a running PostgreSQL. (A PostgreSQL the
  // supervisor restarted gets its parent-death signal when that thread ends, so the
  // supervisor must end after HTTP, not before.)
  if (http_) http_->Stop();
  http_.reset();
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (supervisor_.joinable()) supervisor_.join();
  store_.reset();
  pool_.reset();
  if (pg_) (void)pg_->Stop();
  pg_.reset();
}

}  // namespace tandem::region
