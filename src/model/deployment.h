// What a deployment is: the resource a failover carries whole to the other region.
//
// Plain data, no I/O. Validation lives in validate.h; JSON shapes in api/.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/strong_id.h"

namespace tandem::model {

struct ScheduleDefaults {
  bool catchup = false;
  int max_active_runs = 16;   // per DAG
  int max_active_tasks = 16;  // per DAG run
};

struct DeploymentConfig {
  int worker_slots = 16;         // task processes a region runs at once for this deployment
  int default_pool_slots = 128;  // slots of `default_pool`
  ScheduleDefaults schedule;
};

// Where the deployment's metrics are sent; replicated with the rest.
struct MetricsExport {
  bool enabled = false;
  std::string format = "prometheus";  // prometheus | otlp | statsd
  std::string endpoint;               // URL (prometheus, otlp) or host:port (statsd)
  int interval_seconds = 60;
};

struct Deployment {
  DeploymentId id;   // generated once, never reused
  std::string name;  // unique among live deployments; may be renamed
  std::string ns;    // namespace: derived from name and id at creation; never changes
  std::string workspace_id;  // the workspace it belongs to (uuid); `default` unless chosen
  std::string description;
  DeploymentConfig config;
  MetricsExport metrics;
  std::string created_at;  // RFC 3339, from the database
  std::string updated_at;
};

struct EnvVar {
  std::string key;
  std::string value;  // plaintext inside the process; masked at the API when is_secret
  bool is_secret = false;
};

// Airflow's connection model.
struct Connection {
  std::string conn_id;
  std::string conn_type;
  std::optional<std::string> description, host, schema, login, password, extra;
  std::optional<int> port;
};

struct Variable {
  std::string key;
  std::string value;  // Airflow stores the text form of any JSON value
  std::optional<std::string> description;
  bool is_secret = false;
};

struct Pool {
  std::string name;
  int slots = 0;  // -1: unlimited
  std::optional<std::string> description;
  bool include_deferred = false;
  // Usage, as read (ignored on writes): slots held by task instances in each state.
  int running = 0;
  int queued = 0;
  int scheduled = 0;
};

inline constexpr const char* kDefaultPool = "default_pool";

// A page of a list and the size of the whole list.
template <typename T>
struct Page {
  std::vector<T> items;
  int64_t total = 0;
};

struct PageRequest {
  int64_t limit = 50;
  int64_t offset = 0;
  std::string order_by;  // a field name, "-" prefix for descending; "" = by insertion
  std::string pattern;   // substring filter with % and _ wildcards (Airflow's *_pattern)
};

}  // namespace tandem::model
