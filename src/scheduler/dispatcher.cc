#include "scheduler/dispatcher.h"

#include <spdlog/spdlog.h>

#include <cctype>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "base/text.h"

namespace tandem::scheduler {

// What rendering needs from one deployment, loaded once per claim.
struct DeploymentData {
  bool loaded = false;
  std::vector<model::EnvVar> env;
  std::vector<model::Connection> connections;
  std::vector<model::Variable> variables;
};

namespace {

using Json = nlohmann::json;

// A JSON value as a template renders it: a string as its text, anything else as JSON.
std::string Rendered(const std::string& json_text) {
  Json j = Json::parse(json_text, nullptr, false);
  if (j.is_discarded()) return json_text;
  return j.is_string() ? j.get<std::string>() : j.dump();
}

dag::ConnectionFields Fields(const model::Connection& c) {
  dag::ConnectionFields f;
  f.fields["conn_id"] = c.conn_id;
  f.fields["conn_type"] = c.conn_type;
  auto opt = [&](const char* name, const std::optional<std::string>& v) {
    if (v) f.fields[name] = *v;
  };
  opt("host", c.host);
  opt("schema", c.schema);
  opt("login", c.login);
  opt("password", c.password);
  opt("extra", c.extra);
  opt("description", c.description);
  if (c.port) f.fields["port"] = std::to_string(*c.port);
  return f;
}

Status LoadDeployment(store::Store* store, const DeploymentId& d, DeploymentData& data) {
  if (data.loaded) return Status::Ok();
  model::PageRequest all;
  all.limit = 1000000;
  ASSIGN_OR_RETURN(data.env, store->ListEnv(d));
  ASSIGN_OR_RETURN(auto conns, store->ListConnections(d, all));
  ASSIGN_OR_RETURN(auto vars, store->ListVariables(d, all));
  data.connections = std::move(conns.items);
  data.variables = std::move(vars.items);
  data.loaded = true;
  return Status::Ok();
}

// "" stays "" (a run without that date); anything else must parse.
Result<dag::TimePoint> Time(const std::string& text) {
  if (text.empty()) return dag::TimePoint{};
  return dag::ParseTime(text);
}

}  // namespace

std::string ConnectionUri(const model::Connection& c) {
  std::string type = c.conn_type;
  for (char& ch : type) {
    if (ch == '_') ch = '-';
  }
  std::string uri = type + "://";
  if (c.login || c.password) {
    uri += PercentEncode(c.login.value_or(""));
    if (c.password) uri += ":" + PercentEncode(*c.password);
    uri += "@";
  }
  uri += PercentEncode(c.host.value_or(""));
  if (c.port) uri += ":" + std::to_string(*c.port);
  if (c.schema && !c.schema->empty()) uri += "/" + PercentEncode(*c.schema);
  if (c.extra && !c.extra->empty()) {
    Json extra = Json::parse(*c.extra, nullptr, false);
    bool flat = extra.is_object();
    if (flat) {
      for (const auto& [k, v] : extra.items()) flat = flat && !v.is_structured();
    }
    std::string query;
    if (flat) {
      for (const auto& [k, v] : extra.items()) {
        query += (query.empty() ? "" : "&") + PercentEncode(k) + "=" +
                 PercentEncode(v.is_string() ? v.get<std::string>() : v.dump());
      }
    } else {
      query = "__extra__=" + PercentEncode(*c.extra);
    }
    if (!query.empty()) uri += (c.schema && !c.schema->empty() ? "?" : "/?") + query;
  }
  return uri;
}

std::vector<std::string> SecretsOf(const model::Connection& c) {
  std::vector<std::string> out;
  // A value, and the value as the connection's URI encodes it.
  auto add = [&out](const std::string& v) {
    if (v.empty()) return;
    out.push_back(v);
    std::string encoded = PercentEncode(v);
    if (encoded != v) out.push_back(std::move(encoded));
  };
  if (c.password) add(*c.password);
  if (!c.extra) return out;
  // Airflow's DEFAULT_SENSITIVE_FIELDS: a field whose name holds one of these is secret.
  static constexpr std::string_view kSensitive[] = {
      "access_token", "api_key", "apikey",  "authorization",       "passphrase", "passwd",
      "password",     "private_key", "secret", "token", "keyfile_dict", "service_account"};
  const Json extra = Json::parse(*c.extra, nullptr, false);
  std::function<void(const Json&, bool)> walk = [&](const Json& j, bool sensitive) {
    if (j.is_string()) {
      if (sensitive) add(j.get<std::string>());
    } else if (j.is_object()) {
      for (const auto& [k, v] : j.items()) {
        std::string key = k;
        for (char& ch : key) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        bool s = sensitive;
        for (std::string_view w : kSensitive) s = s || key.find(w) != std::string::npos;
        walk(v, s);
      }
    } else if (j.is_array()) {
      for (const Json& v : j) walk(v, sensitive);
    }
  };
  if (!extra.is_discarded()) walk(extra, false);
  return out;
}

Dispatcher::Dispatcher(store::Execution* execution, store::Store* store, BundleCache* bundles,
                       logs::LogStore* logs, const TokenSigner* tokens, Clock* clock,
                       DispatcherOptions options, std::function<void()> wake_scheduler)
    : execution_(execution),
      store_(store),
      bundles_(bundles),
      logs_(logs),
      tokens_(tokens),
      clock_(clock),
      options_(std::move(options)),
      wake_scheduler_(std::move(wake_scheduler)) {}

void Dispatcher::NotifyWork() {
  {
    std::lock_guard lock(mu_);
    ++work_generation_;
  }
  work_cv_.notify_all();
}

Result<Dispatcher::ClaimAnswer> Dispatcher::Claim(const store::WorkerInfo& w, int n,
                                                  std::chrono::milliseconds wait) {
  uint64_t generation;
  {
    std::lock_guard lock(mu_);
    generation = work_generation_;
  }
  if (options_.may_start && !options_.may_start()) {
    // Not the active region (or between leases): start nothing; hold the long poll so the
    // worker does not spin, and let it ask again.
    std::unique_lock lock(mu_);
    work_cv_.wait_for(lock, wait, [&] { return work_generation_ != generation; });
    return ClaimAnswer{};
  }
  ASSIGN_OR_RETURN(std::vector<store::ClaimedTask> claimed, execution_->Claim(w, n));
  if (claimed.empty() && wait.count() > 0) {
    // Nothing now: wait for the scheduler to queue something, then answer empty so the worker
    // asks again at once. Claiming after the wait would hand tasks to a worker that may have
    // died while its request waited (HTTP cannot tell), and those tries would be lost.
    std::unique_lock lock(mu_);
    work_cv_.wait_for(lock, wait, [&] { return work_generation_ != generation; });
  }
  std::map<std::string, DeploymentData> data;
  ClaimAnswer answer;
  // Taken after the claim: every try this worker was handed so far has a start_date at or
  // before it. Without it the answer still goes out (its tries are judged by the grace alone).
  if (Result<int64_t> now = execution_->NowMicros(); now.ok()) answer.claims_through_us = *now;
  std::vector<TaskToRun>& out = answer.tasks;
  std::vector<store::TryOutcome> failed;
  for (const store::ClaimedTask& t : claimed) {
    Result<TaskToRun> r = Render(t, data[t.deployment.value()]);
    if (r.ok()) {
      out.push_back(std::move(r).value());
      continue;
    }
    // The try fails here, with the reason where the user will look: its log.
    TaskClaims c{t.ti_id, t.try_number, t.deployment.value(), t.dag_id, t.run_id, t.task_id, 0};
    (void)AppendLog(c, "ERROR - the task cannot start: " + r.status().message() + "\n");
    failed.push_back({{t.ti_id, t.try_number}, "failed", std::nullopt});
  }
  if (!failed.empty()) RETURN_IF_ERROR(Finish(w.id, failed).status());
  return answer;
}

Result<TaskToRun> Dispatcher::Render(const store::ClaimedTask& t, DeploymentData& data) {
  ASSIGN_OR_RETURN(BundlePtr bundle, bundles_->Get(t.deployment, t.bundle_version));
  const dag::DagSpec* dag = bundle->find_dag(t.dag_id);
  if (dag == nullptr) {
    return FailedPrecondition("DAG " + t.dag_id + " is not in bundle version " + t.bundle_version);
  }
  const dag::TaskSpec* task = dag->find_task(t.task_id);
  if (task == nullptr) {
    return FailedPrecondition("task " + t.task_id + " is not in bundle version " +
                              t.bundle_version);
  }
  RETURN_IF_ERROR(LoadDeployment(store_, t.deployment, data));

  dag::TemplateContext ctx;
  ASSIGN_OR_RETURN(ctx.logical_date, Time(t.logical_date));
  ASSIGN_OR_RETURN(ctx.data_interval_start, Time(t.data_interval_start));
  ASSIGN_OR_RETURN(ctx.data_interval_end, Time(t.data_interval_end));
  ctx.run_id = t.run_id;
  ctx.dag_id = t.dag_id;
  ctx.task_id = t.task_id;
  // The run's conf overrides the DAG's params of the same name, as in Airflow.
  Json conf = Json::parse(t.conf, nullptr, false);
  for (const auto& [name, value] : dag->params) {
    ctx.params[name] =
        conf.is_object() && conf.contains(name) ? Rendered(conf[name].dump()) : Rendered(value);
  }
  for (const model::Variable& v : data.variables) ctx.variables[v.key] = v.value;
  for (const model::Connection& c : data.connections) ctx.connections[c.conn_id] = Fields(c);
  bool wants_xcoms = !task->bash_command.xcoms().empty();
  for (const auto& [k, v] : task->env) wants_xcoms = wants_xcoms || !v.xcoms().empty();
  if (wants_xcoms) {
    ASSIGN_OR_RETURN(auto xcoms, execution_->RunXComs(t.run_pk));
    for (const auto& [key, value] : xcoms) ctx.xcoms[key] = Rendered(value);
  }

  TaskToRun run;
  const int64_t now_s =
      std::chrono::duration_cast<std::chrono::seconds>(clock_->Wall().time_since_epoch()).count();
  run.claims = {t.ti_id,
                t.try_number,
                t.deployment.value(),
                t.dag_id,
                t.run_id,
                t.task_id,
                now_s + options_.token_ttl.count()};
  run.token = tokens_->Sign(run.claims);
  ASSIGN_OR_RETURN(std::string command, task->bash_command.Render(ctx));
  run.argv = {"bash", "-c", command};
  for (const model::EnvVar& e : data.env) {
    run.env.emplace_back(e.key, e.value);
    if (e.is_secret) run.mask.push_back(e.value);
  }
  for (const model::Connection& c : data.connections) {
    run.env.emplace_back("AIRFLOW_CONN_" + AsciiUpper(c.conn_id), ConnectionUri(c));
    for (std::string& s : SecretsOf(c)) run.mask.push_back(std::move(s));
  }
  for (const model::Variable& v : data.variables) {
    run.env.emplace_back("AIRFLOW_VAR_" + AsciiUpper(v.key), v.value);
    if (v.is_secret) run.mask.push_back(v.value);
  }
  run.env.emplace_back("AIRFLOW_CTX_DAG_ID", t.dag_id);
  run.env.emplace_back("AIRFLOW_CTX_TASK_ID", t.task_id);
  run.env.emplace_back("AIRFLOW_CTX_DAG_RUN_ID", t.run_id);
  run.env.emplace_back("AIRFLOW_CTX_TRY_NUMBER", std::to_string(t.try_number));
  run.env.emplace_back("AIRFLOW_CTX_LOGICAL_DATE", t.logical_date);
  run.env.emplace_back("AIRFLOW_CTX_DAG_OWNER", task->owner);
  for (const auto& [name, value] : task->env) {
    ASSIGN_OR_RETURN(std::string v, value.Render(ctx));
    run.env.emplace_back(name, std::move(v));
  }
  run.cwd = task->cwd;
  if (options_.task_uid_base > 0) run.run_as_uid = options_.task_uid_base + t.task_uid;
  run.timeout_ms = t.timeout_s ? int64_t{*t.timeout_s} * 1000 : 0;
  return run;
}

Result<TaskClaims> Dispatcher::Verify(std::string_view token) const {
  const int64_t now_s =
      std::chrono::duration_cast<std::chrono::seconds>(clock_->Wall().time_since_epoch()).count();
  return tokens_->Verify(token, now_s);
}

Result<Dispatcher::HeartbeatAnswer> Dispatcher::Heartbeat(
    const store::WorkerInfo& w, const std::vector<TaskClaims>& held,
    std::optional<int64_t> claims_through_us) {
  std::vector<store::TryRef> refs;
  refs.reserve(held.size());
  for (const TaskClaims& c : held) refs.push_back({c.ti_id, c.try_number});
  // A try claimed in the last two heartbeats may not be in the worker's list yet.
  ASSIGN_OR_RETURN(
      std::vector<std::string> stop,
      execution_->Reconcile(w, refs, 2 * options_.heartbeat_ms + 1000, claims_through_us));
  HeartbeatAnswer answer;
  const int64_t now_s =
      std::chrono::duration_cast<std::chrono::seconds>(clock_->Wall().time_since_epoch()).count();
  const int64_t renew_before = now_s + options_.token_ttl.count() / 2;
  std::set<std::string> stopped(stop.begin(), stop.end());
  for (const TaskClaims& c : held) {
    if (c.expires_at > renew_before || stopped.count(c.ti_id) != 0) continue;
    TaskClaims renewed = c;
    renewed.expires_at = now_s + options_.token_ttl.count();
    answer.renewed.emplace_back(c.ti_id, tokens_->Sign(renewed));
  }
  answer.stop = std::move(stop);
  return answer;
}

Result<std::vector<bool>> Dispatcher::AreRunning(const std::vector<TaskClaims>& claims) {
  std::vector<store::TryRef> refs;
  refs.reserve(claims.size());
  for (const TaskClaims& c : claims) refs.push_back({c.ti_id, c.try_number});
  return execution_->AreRunning(refs);
}

Status Dispatcher::AppendLog(const TaskClaims& c, std::string_view data) {
  ASSIGN_OR_RETURN(std::string key,
                   logs::TaskLogKey(c.deployment_id, c.dag_id, c.run_id, c.task_id, c.try_number));
  return logs_->Append(key, data);
}

Result<std::vector<bool>> Dispatcher::Finish(const std::string& worker_id,
                                             const std::vector<store::TryOutcome>& outcomes) {
  ASSIGN_OR_RETURN(std::vector<bool> applied, execution_->Finish(worker_id, outcomes));
  wake_scheduler_();
  return applied;
}

}  // namespace tandem::scheduler
