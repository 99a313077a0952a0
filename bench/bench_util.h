// What the pair benchmarks share: small JSON and HTTP helpers, quantiles, and the set-up of a
// deployment whose "hold" DAG keeps long-running tasks busy.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/status.h"
#include "harness/pair_harness.h"

namespace tandem::bench {

using Json = nlohmann::json;

double Secs(std::chrono::steady_clock::duration d);
// The answer's JSON, or null when it is not JSON.
Json Body(const testing::HttpReply& r);
// The Airflow API root of deployment `d`.
std::string Root(const std::string& d);
// j[key] when it is a string, else "".
std::string Str(const Json& j, const char* key);
// The q-quantile (nearest rank) of `v`; NaN when it is empty or holds a NaN.
double Quantile(std::vector<double> v, double q);
double Median(const std::vector<double>& v);

// Calls `handler` on SIGINT, SIGTERM and SIGHUP (a benchmark stops and cleans up), and raises
// the open-file limit to its maximum (a pair with 1,250 tasks holds many sockets and pipes).
void SetUpProcess(void (*handler)(int));

// A deployment on the region at `url`: its "hold" DAG runs `tasks` bash tasks of `command`
// (retried every second up to `retries` times), `more_dags` is more of the bundle (YAML), the
// DAGs `unpause` names are unpaused, and "hold" is triggered. Its id.
struct HoldDeployment {
  std::string name;
  int worker_slots = 0;
  int tasks = 0;
  int max_active_tasks = 64;
  int retries = 20;
  std::string command = "sleep 3600";  // a YAML scalar
  std::string more_dags;
  std::vector<std::string> unpause = {"hold"};
};
Result<std::string> SetUpHoldDeployment(const std::string& url, const HoldDeployment& d);

}  // namespace tandem::bench
