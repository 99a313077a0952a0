#include "bench/bench_util.h"

#include <fmt/core.h>
#include <signal.h>

#include <algorithm>
#include <cmath>

#include "base/process.h"

namespace tandem::bench {

using testing::Http;
using testing::HttpReply;

void SetUpProcess(void (*handler)(int)) {
  struct sigaction sa = {};
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a TLS write to a region that was killed fails, not the bench
  RaiseFileLimit();
}

double Secs(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

Json Body(const HttpReply& r) {
  Json j = Json::parse(r.body, nullptr, false);
  return j.is_discarded() ? Json(nullptr) : j;
}

std::string Root(const std::string& d) { return "/deployments/" + d + "/api/v2"; }

std::string Str(const Json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}

double Quantile(std::vector<double> v, double q) {
  // No figure from nothing, and none from a list with a hole in it: a verdict compared with
  // NaN is never met.
  if (v.empty() || std::any_of(v.begin(), v.end(), [](double x) { return std::isnan(x); })) {
    return NAN;
  }
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())));
  return v[i];
}

double Median(const std::vector<double>& v) { return Quantile(v, 0.5); }

Result<std::string> SetUpHoldDeployment(const std::string& url, const HoldDeployment& d) {
  HttpReply c = Http(url, "POST", "/api/v1/deployments",
                     Json{{"name", d.name}, {"config", {{"worker_slots", d.worker_slots}}}}.dump());
  if (c.status != 201) return Internal("create " + d.name + ": " + c.body);
  const std::string id = Body(c)["id"];
  std::string bundle = fmt::format("hold:\n  schedule: null\n  max_active_tasks: {}\n  tasks:\n",
                                   d.max_active_tasks);
  for (int t = 0; t < d.tasks; ++t) {
    bundle += fmt::format(
        "    s{}:\n      operator: bash\n      retries: {}\n      retry_delay: 1s\n"
        "      bash_command: {}\n",
        t, d.retries, d.command);
  }
  if (d.tasks <= 0) bundle += "    s0:\n      operator: empty\n";
  bundle += d.more_dags;
  HttpReply b = Http(url, "POST", "/api/v1/deployments/" + id + "/bundle",
                     Json{{"files", {{"dags.yaml", bundle}}}}.dump());
  if (b.status != 200) return Internal("deploy " + d.name + ": " + b.body);
  for (const std::string& dag : d.unpause) {
    HttpReply u = Http(url, "PATCH", Root(id) + "/dags/" + dag, Json{{"is_paused", false}}.dump());
    if (u.status != 200) return Internal("unpause " + dag + ": " + u.body);
  }
  HttpReply t = Http(url, "POST", Root(id) + "/dags/hold/dagRuns",
                     Json{{"logical_date", nullptr}, {"conf", Json::object()}}.dump());
  if (t.status != 200) return Internal("trigger: " + t.body);
  return id;
}

}  // namespace tandem::bench
