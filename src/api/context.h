// What the API's handlers share: the store, the region's identity, its limits and its health.
// Owned by the region agent; outlives the HTTP server.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/metrics.h"
#include "base/status.h"
#include "images/registry_token.h"

namespace tandem::store {
class Store;
class Pipelines;
class Identities;
class AuditLog;
}  // namespace tandem::store
namespace tandem::logs {
class LogStore;
}
namespace tandem::scheduler {
class Dispatcher;
class BundleCache;
}  // namespace tandem::scheduler

namespace tandem::api {

class LoginLimiter;
class WorkerAuthenticator;

struct Readiness {
  bool ready = false;
  std::string detail;
};

// A region's deployed images: bundles as OCI images in its registry, copied to the standby's.
// Implemented by the region (region/images.h); null when the region runs no registry.
class BundleImages {
 public:
  struct Published {
    std::string digest;  // the manifest's
    int64_t bytes = 0;   // manifest, config and layers
  };
  virtual ~BundleImages() = default;
  // "http://address:port" of the region's registry.
  virtual std::string registry_url() const = 0;
  // The region is one of a pair whose other region runs a registry.
  virtual bool has_standby() const = 0;
  // Packages `files` as an image and pushes it to the region's registry, tagged "latest".
  virtual Result<Published> Publish(const std::string& repository,
                                    const std::map<std::string, std::string>& files) = 0;
  // The files of `repository@digest` from the region's registry, every blob checked.
  virtual Result<std::map<std::string, std::string>> Fetch(const std::string& repository,
                                                           const std::string& digest,
                                                           int64_t* bytes) = 0;
  // Copies the image to the standby's registry and checks its digest there, retrying up to
  // the pair's image_replication_timeout_seconds. OK at once when there is no standby.
  virtual Status Replicate(const std::string& repository, const std::string& digest) = 0;
  // Whether the registries want bearer tokens (RegistryToken), from /api/v1/registry/token.
  virtual bool takes_tokens() const = 0;
  // A bearer token for the pair's registries (images/registry_token.h) naming `subject` and
  // granting `access`. FailedPrecondition when the registries take no tokens (no TLS).
  virtual Result<std::string> RegistryToken(const std::string& subject,
                                            const std::vector<images::RegistryAccess>& access) = 0;
};

struct ApiContext {
  std::string region;
  store::Store* store = nullptr;
  store::Pipelines* pipelines = nullptr;
  store::Identities* identities = nullptr;  // workspaces, tokens: what requests are checked by
  std::string session_key;                  // signs users' session tokens (POST /auth/token)
  LoginLimiter* logins = nullptr;           // failed logins, per user and address
  store::AuditLog* audit = nullptr;         // the audit trail, read by eventLogs and /api/v1/audit
  logs::LogStore* logs = nullptr;
  scheduler::Dispatcher* dispatcher = nullptr;  // the Execution API's engine
  WorkerAuthenticator* workers = nullptr;       // the Execution API's credentials
  scheduler::BundleCache* bundles = nullptr;
  BundleImages* images = nullptr;  // null: the region runs no registry
  // Wakes the scheduler at once (a run was triggered, a task finished). Never blocks.
  std::function<void()> wake_scheduler = [] {};
  // When the scheduler last completed a pass (RFC 3339), nullopt before the first.
  std::function<std::optional<std::string>()> scheduler_heartbeat = [] {
    return std::optional<std::string>();
  };
  MetricsRegistry* metrics = nullptr;
  size_t max_value_bytes = 1 << 20;
  // Checked by /readyz on every call.
  std::function<Readiness()> readiness;
};

class Router;
// One per resource file.
void RegisterHealthRoutes(Router& r, const ApiContext& ctx);
void RegisterDeploymentRoutes(Router& r, const ApiContext& ctx);
void RegisterEnvRoutes(Router& r, const ApiContext& ctx);
void RegisterVariableRoutes(Router& r, const ApiContext& ctx);
void RegisterConnectionRoutes(Router& r, const ApiContext& ctx);
void RegisterPoolRoutes(Router& r, const ApiContext& ctx);
void RegisterBundleRoutes(Router& r, const ApiContext& ctx);
void RegisterDagRoutes(Router& r, const ApiContext& ctx);
void RegisterDagRunRoutes(Router& r, const ApiContext& ctx);
void RegisterTaskInstanceRoutes(Router& r, const ApiContext& ctx);
void RegisterXComRoutes(Router& r, const ApiContext& ctx);
void RegisterImportErrorRoutes(Router& r, const ApiContext& ctx);
void RegisterMonitorRoutes(Router& r, const ApiContext& ctx);
void RegisterExecutionRoutes(Router& r, const ApiContext& ctx);
void RegisterIdentityRoutes(Router& r, const ApiContext& ctx);
void RegisterEventLogRoutes(Router& r, const ApiContext& ctx);
void RegisterKeyRoutes(Router& r, const ApiContext& ctx);

inline void RegisterAllRoutes(Router& r, const ApiContext& ctx) {
  RegisterHealthRoutes(r, ctx);
  RegisterDeploymentRoutes(r, ctx);
  RegisterEnvRoutes(r, ctx);
  RegisterVariableRoutes(r, ctx);
  RegisterConnectionRoutes(r, ctx);
  RegisterPoolRoutes(r, ctx);
  RegisterBundleRoutes(r, ctx);
  RegisterDagRoutes(r, ctx);
  RegisterDagRunRoutes(r, ctx);
  RegisterTaskInstanceRoutes(r, ctx);
  RegisterXComRoutes(r, ctx);
  RegisterImportErrorRoutes(r, ctx);
  RegisterMonitorRoutes(r, ctx);
  RegisterExecutionRoutes(r, ctx);
  RegisterIdentityRoutes(r, ctx);
  RegisterEventLogRoutes(r, ctx);
  RegisterKeyRoutes(r, ctx);
}

// The Airflow API root of a deployment on a region: /deployments/{deployment}/api/v2.
inline constexpr const char* kAirflowRoot = "/deployments/{deployment}/api/v2";

}  // namespace tandem::api
