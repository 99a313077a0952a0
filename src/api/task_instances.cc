// Airflow REST API v2 task instances, per deployment:
// {kAirflowRoot}/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances[/{task_id}[/tries[/{n}]]],
// .../taskInstances/{task_id}/logs/{try_number} and
// {kAirflowRoot}/dags/{dag_id}/clearTaskInstances.
//
// Shapes follow the Airflow spec (TaskInstanceResponse, TaskInstanceHistoryResponse and their
// collections, TaskInstancesLogResponse, ClearTaskInstancesBody). tandem has no mapped tasks:
// map_index is always -1. dag_id and dag_run_id "~" list across DAGs and runs.
//
// Logs. A try's log is read from the log store only after the metadata store has confirmed
// that this deployment has that task instance and try, so a path naming another deployment's
// run, or ids made to escape the log root, reads nothing and answers 404. A call returns at
// most 1 MiB (64 MiB with full_content=true), cut at a line end when more follows, and a
// continuation_token (the base64 of the byte offset reached) to pass back as `token`. A try
// that has not written its log yet reads as empty. Accept: text/plain answers the raw text,
// application/x-ndjson one StructuredLogMessage per line; otherwise the JSON object, with one
// {"event": line} per line of the log.
#include <charconv>
#include <limits>

#include "api/context.h"
#include "api/errors.h"
#include "api/json_util.h"
#include "api/pipeline_json.h"
#include "crypto/secret_box.h"
#include "logs/log_store.h"
#include "store/pipelines.h"

namespace tandem::api {
namespace {

constexpr uint64_t kLogPageBytes = uint64_t{1} << 20;
constexpr uint64_t kFullLogBytes = uint64_t{64} << 20;

Result<int> TryNumber(const Request& req, const char* name) {
  ASSIGN_OR_RETURN(int64_t n, PathInt(req, name));
  if (n < 0 || n > std::numeric_limits<int>::max()) {
    return NotFound("no try " + req.params.at(name) + " of this task instance");
  }
  return static_cast<int>(n);
}

// ---- logs

// Tokens are unpadded base64 of the decimal offset.
std::string Token(uint64_t offset) {
  std::string t = Base64Encode(std::to_string(offset));
  while (!t.empty() && t.back() == '=') t.pop_back();
  return t;
}

Result<uint64_t> ReadToken(const Request& req) {
  const std::string* token = req.Query("token");
  if (token == nullptr || token->empty()) return uint64_t{0};
  std::string padded = *token;
  while (padded.size() % 4 != 0) padded.push_back('=');
  auto raw = Base64Decode(padded);
  uint64_t offset = 0;
  if (raw.ok()) {
    auto [p, ec] = std::from_chars(raw->data(), raw->data() + raw->size(), offset);
    if (!raw->empty() && ec == std::errc() && p == raw->data() + raw->size()) return offset;
  }
  return InvalidArgument("query parameter `token` is not a continuation token of this log");
}

// Up to `max` bytes of `key` from `offset`; a log not written yet reads as empty.
Result<logs::LogChunk> ReadLog(logs::LogStore& logs, const std::string& key, uint64_t offset,
                               uint64_t max) {
  logs::LogChunk out;
  out.next_offset = offset;
  while (out.data.size() < max) {
    auto c = logs.Read(key, out.next_offset, max - out.data.size());
    if (!c.ok()) {
      if (c.status().code() == Code::kNotFound) break;
      return c.status();
    }
    out.size = c->size;
    if (c->data.empty()) break;
    out.data += c->data;
    out.next_offset = c->next_offset;
    if (out.next_offset >= c->size) break;
  }
  // More follows: stop at the last complete line, so no line is split between two answers.
  if (out.next_offset < out.size) {
    size_t nl = out.data.rfind('\n');
    if (nl != std::string::npos && nl + 1 < out.data.size()) {
      out.next_offset -= out.data.size() - (nl + 1);
      out.data.resize(nl + 1);
    }
  }
  return out;
}

Json Events(std::string_view text) {
  Json events = Json::array();
  size_t i = 0;
  while (i < text.size()) {
    size_t j = std::min(text.find('\n', i), text.size());
    events.push_back({{"event", std::string(text.substr(i, j - i))}});
    i = j + 1;
  }
  return events;
}

// The first media type of the Accept header, without parameters.
std::string AcceptedType(const Request& req) {
  auto it = req.headers.find("accept");
  if (it == req.headers.end()) return "";
  std::string_view v = it->second;
  v = v.substr(0, std::min(v.find(','), v.find(';')));
  while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
  return std::string(v);
}

Result<Response> LogResponse(const Request& req, logs::LogStore& logs, const DeploymentId& d,
                             const model::TaskInstance& ti) {
  ASSIGN_OR_RETURN(std::string key,
                   logs::TaskLogKey(d.value(), ti.dag_id, ti.run_id, ti.task_id, ti.try_number));
  ASSIGN_OR_RETURN(uint64_t offset, ReadToken(req));
  ASSIGN_OR_RETURN(std::optional<bool> full, QueryBool(req, "full_content"));
  ASSIGN_OR_RETURN(
      logs::LogChunk chunk,
      ReadLog(logs, key, offset, full.value_or(false) ? kFullLogBytes : kLogPageBytes));
  std::string type = AcceptedType(req);
  if (type == "text/plain") return Response{200, chunk.data, "text/plain; charset=utf-8"};
  Json events = Events(chunk.data);
  if (type == "application/x-ndjson") {
    std::string body;
    for (const auto& e : events) {
      body += e.dump(-1, ' ', false, Json::error_handler_t::replace);
      body += '\n';
    }
    return Response{200, body, "application/x-ndjson"};
  }
  return JsonResponse(200, {{"content", events}, {"continuation_token", Token(chunk.next_offset)}});
}

// ---- clearTaskInstances

Result<std::vector<std::string>> ReadTaskIds(const Json& j) {
  std::vector<std::string> ids;
  auto it = j.find("task_ids");
  if (it == j.end() || it->is_null()) return ids;
  if (!it->is_array()) return InvalidArgument("field `task_ids` must be an array or null");
  for (const Json& e : *it) {
    // A task id, or Airflow's [task_id, map_index] pair (only -1 exists here).
    if (e.is_string()) {
      ids.push_back(e.get<std::string>());
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1] == -1) {
      ids.push_back(e[0].get<std::string>());
    } else {
      return InvalidArgument(
          "field `task_ids` must hold task ids or [task_id, -1] pairs (no mapped tasks)");
    }
  }
  return ids;
}

Result<store::ClearRequest> ParseClear(const Json& j, std::string* run_id) {
  RETURN_IF_ERROR(CheckFields(
      j, {"dry_run", "start_date", "end_date", "only_failed", "only_running", "reset_dag_runs",
          "task_ids", "dag_run_id", "include_upstream", "include_downstream", "include_future",
          "include_past", "run_on_latest_version"}));
  store::ClearRequest c;
  c.dry_run = true;  // Airflow's defaults
  c.only_failed = true;
  RETURN_IF_ERROR(ReadBool(j, "dry_run", &c.dry_run));
  RETURN_IF_ERROR(ReadBool(j, "only_failed", &c.only_failed));
  RETURN_IF_ERROR(ReadBool(j, "run_on_latest_version", &c.run_on_latest_version));
  bool reset_dag_runs = true;  // clearing always queues the run again here
  RETURN_IF_ERROR(ReadBool(j, "reset_dag_runs", &reset_dag_runs));
  for (const char* flag : {"only_running", "include_upstream", "include_downstream",
                           "include_future", "include_past"}) {
    bool v = false;
    RETURN_IF_ERROR(ReadBool(j, flag, &v));
    if (v) return InvalidArgument(std::string("field `") + flag + "` is not supported by tandem");
  }
  for (const char* field : {"start_date", "end_date"}) {
    if (j.contains(field) && !j[field].is_null()) {
      return InvalidArgument(std::string("field `") + field +
                             "` is not supported by tandem: clear one run by dag_run_id");
    }
  }
  std::optional<std::string> run;
  RETURN_IF_ERROR(ReadOptString(j, "dag_run_id", &run));
  if (!run) return InvalidArgument("field `dag_run_id` is required: tandem clears one run");
  *run_id = *run;
  ASSIGN_OR_RETURN(c.task_ids, ReadTaskIds(j));
  return c;
}

}  // namespace

void RegisterTaskInstanceRoutes(Router& r, const ApiContext& ctx) {
  store::Store* store = ctx.store;
  store::Pipelines* pipelines = ctx.pipelines;
  logs::LogStore* logs = ctx.logs;
  std::function<void()> wake = ctx.wake_scheduler;
  const std::string base =
      std::string(kAirflowRoot) + "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances";
  const std::string ti = base + "/{task_id}";

  r.Add("GET", base, Wrap([store, pipelines](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolvePipelineDeployment(store, pipelines, req));
          store::TiFilter filter;
          ASSIGN_OR_RETURN(filter.page, ReadPage(req, "task_display_name_pattern"));
          ASSIGN_OR_RETURN(filter.states, QueryValues(req, "state",
                                                      {"none", "removed", "scheduled", "queued",
                                                       "running", "success", "restarting", "failed",
                                                       "up_for_retry", "up_for_reschedule",
                                                       "upstream_failed", "skipped", "deferred"}));
          ASSIGN_OR_RETURN(model::Page<model::TaskInstance> p,
                           pipelines->ListTaskInstances(d, req.params.at("dag_id"),
                                                        req.params.at("dag_run_id"), filter));
          return JsonResponse(200, TaskInstanceCollection(p.items, p.total));
        }));

  r.Add("GET", ti, Wrap([store, pipelines](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolvePipelineDeployment(store, pipelines, req));
          RETURN_IF_ERROR(CheckMapIndex(req));
          ASSIGN_OR_RETURN(
              model::TaskInstance x,
              pipelines->GetTaskInstance(d, req.params.at("dag_id"), req.params.at("dag_run_id"),
                                         req.params.at("task_id")));
          return JsonResponse(200, TaskInstanceJson(x));
        }));

  r.Add("GET", ti + "/tries", Wrap([store, pipelines](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolvePipelineDeployment(store, pipelines, req));
          RETURN_IF_ERROR(CheckMapIndex(req));
          ASSIGN_OR_RETURN(
              std::vector<model::TaskInstance> tries,
              pipelines->ListTries(d, req.params.at("dag_id"), req.params.at("dag_run_id"),
                                   req.params.at("task_id")));
          Json items = Json::array();
          for (const auto& x : tries) items.push_back(TaskInstanceTryJson(x));
          return JsonResponse(200, {{"task_instances", items}, {"total_entries", tries.size()}});
        }));

  r.Add("GET", ti + "/tries/{task_try_number}",
        Wrap([store, pipelines](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolvePipelineDeployment(store, pipelines, req));
          RETURN_IF_ERROR(CheckMapIndex(req));
          ASSIGN_OR_RETURN(int n, TryNumber(req, "task_try_number"));
          ASSIGN_OR_RETURN(model::TaskInstance x, pipelines->GetTry(d, req.params.at("dag_id"),
                                                                    req.params.at("dag_run_id"),
                                                                    req.params.at("task_id"), n));
          return JsonResponse(200, TaskInstanceTryJson(x));
        }));

  r.Add("GET", ti + "/logs/{try_number}",
        Wrap([store, pipelines, logs](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolvePipelineDeployment(store, pipelines, req));
          if (logs == nullptr) return Unavailable("this region does not serve task logs yet");
          RETURN_IF_ERROR(CheckMapIndex(req));
          ASSIGN_OR_RETURN(int n, TryNumber(req, "try_number"));
          // The store vouches for the ids before any of them reaches a log key.
          ASSIGN_OR_RETURN(model::TaskInstance x, pipelines->GetTry(d, req.params.at("dag_id"),
                                                                    req.params.at("dag_run_id"),
                                                                    req.params.at("task_id"), n));
          return LogResponse(req, *logs, d, x);
        }));

  r.Add("POST", std::string(kAirflowRoot) + "/dags/{dag_id}/clearTaskInstances",
        Wrap([store, pipelines, wake](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolvePipelineDeployment(store, pipelines, req));
          ASSIGN_OR_RETURN(Json j, ParseObject(req.body));
          std::string run_id;
          ASSIGN_OR_RETURN(store::ClearRequest c, ParseClear(j, &run_id));
          ASSIGN_OR_RETURN(std::vector<model::TaskInstance> tis,
                           pipelines->ClearRun(d, req.params.at("dag_id"), run_id, c));
          if (!c.dry_run) wake();
          return JsonResponse(200, TaskInstanceCollection(tis, static_cast<int64_t>(tis.size())));
        }));
}

}  // namespace tandem::api
