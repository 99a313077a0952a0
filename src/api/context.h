// What the API's handlers share: the store, the region's identity, its limits and its health.
// Owned by the region agent; outlives the HTTP server.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

#include "base/metrics.h"
#include "base/status.h"

namespace tandem::store {
class Store;
}

namespace tandem::api {

struct Readiness {
  bool ready = false;
  std::string detail;
};

struct ApiContext {
  std::string region;
  store::Store* store = nullptr;
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

inline void RegisterAllRoutes(Router& r, const ApiContext& ctx) {
  RegisterHealthRoutes(r, ctx);
  RegisterDeploymentRoutes(r, ctx);
  RegisterEnvRoutes(r, ctx);
  RegisterVariableRoutes(r, ctx);
  RegisterConnectionRoutes(r, ctx);
  RegisterPoolRoutes(r, ctx);
}

// The Airflow API root of a deployment on a region: /deployments/{deployment}/api/v2.
inline constexpr const char* kAirflowRoot = "/deployments/{deployment}/api/v2";

}  // namespace tandem::api
