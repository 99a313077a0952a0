// The Execution API, which workers speak (Airflow 3's split: workers never touch the
// database). Served region-wide under /execution/v1 and per deployment under
// /deployments/{deployment}/execution/v1 (a worker given one deployment's URL only ever gets
// that deployment's tasks).
//
//   POST claim      {worker_id, hostname, slots, capacity, wait_ms}
//                   -> {heartbeat_ms, tasks: [{token, ti_id, try_number, deployment_id, dag_id,
//                       run_id, task_id, argv, env: {NAME: value}, cwd, timeout_ms}],
//                       claims_through}
//                   When nothing is queued, waits up to wait_ms (at most 30 s) for work and
//                   answers empty: the worker claims again at once. (Claiming after the wait
//                   could hand tasks to a worker that died while it waited.)
//                   claims_through: the database's clock (µs) after this claim (absent when
//                   the region starts nothing); the worker sends the latest it has started the
//                   tasks of with its heartbeats.
//   POST heartbeat  {worker_id, hostname, slots, capacity, tokens: [token...], claims_through?}
//                   -> {stop: [ti_id...],   tries the worker must kill (cleared, reaped, marked)
//                       renewed: {ti_id: token}}  fresh tokens for tries past half their life
//                   A running try of the worker's it does not list is failed as lost once
//                   claimed over two heartbeats ago — and, with claims_through, by then.
//   POST logs       {chunks: [{token, data}]} -> 204; appended to each try's log in order.
//                   Chunks of tries that are no longer running are dropped; when every chunk's
//                   try has ended: 409, nothing appended (a replayed token writes nothing).
//   POST finish     {worker_id, results: [{token, state: success|failed|skipped,
//                   return_value?: JSON}]} -> {results: [{ti_id, applied}]}; 409 when none of
//                   them applied (every try had ended: a replay, or a report already taken).
//
// Every request carries a worker credential (Authorization: Bearer ...; api/worker_auth.h; 401
// without a valid one). One made for a deployment acts for that deployment only: its claims get
// that deployment's tasks whatever the path, and a path or token of another deployment is 403.
// Every token in a request is checked before anything is done: one forged or expired token makes
// the whole request 401 and changes nothing. A valid token names one task instance at one try;
// it must belong to the deployment the path or the credential names (else 403). A result for a
// try that is no longer running on that worker is not applied (applied: false), so a worker
// retrying a report it is unsure of is safe.
#include "api/context.h"
#include "api/errors.h"
#include "api/json_util.h"
#include "api/worker_auth.h"
#include "model/validate.h"
#include "scheduler/dispatcher.h"
#include "store/store.h"

namespace tandem::api {
namespace {

constexpr int kMaxWaitMs = 30000;
constexpr int kMaxBatch = 5000;

// The deployment the request acts for, if one: the path's, or the credential's. A credential of
// one deployment on another's path is refused.
Result<std::optional<DeploymentId>> Scope(const ApiContext& ctx, const Request& req) {
  auto it = req.headers.find("authorization");
  ASSIGN_OR_RETURN(WorkerGrant grant,
                   ctx.workers->Authenticate(it == req.headers.end() ? "" : it->second));
  std::optional<DeploymentId> path;
  if (req.params.count("deployment") != 0) {
    ASSIGN_OR_RETURN(DeploymentId d, ResolveDeployment(*ctx.store, req));
    path = d;
  }
  if (!grant.deployment_id) return path;
  if (path && path->value() != *grant.deployment_id) {
    return PermissionDenied("the " + grant.name + " is for another deployment's workers");
  }
  return std::optional<DeploymentId>(DeploymentId(*grant.deployment_id));
}

// No try the request's task tokens name is still running (on this worker, for a report): a
// replay, a report already taken, or another worker's try.
Response Ended(bool on_this_worker) {
  return ErrorResponse(
      409, on_this_worker
               ? "none of these tries is running on this worker: each has ended or is another "
                 "worker's, so nothing was applied"
               : "every try these task tokens name has ended: they act on nothing now");
}

Result<store::WorkerInfo> ReadWorker(const Json& body, const std::optional<DeploymentId>& scope,
                                     const scheduler::Dispatcher& dispatcher) {
  store::WorkerInfo w;
  RETURN_IF_ERROR(ReadString(body, "worker_id", &w.id));
  if (!model::LooksLikeUuid(w.id)) return InvalidArgument("worker_id must be a UUID");
  RETURN_IF_ERROR(ReadString(body, "hostname", &w.hostname));
  if (w.hostname.size() > 255) return InvalidArgument("hostname must have at most 255 characters");
  int capacity = 0;
  RETURN_IF_ERROR(ReadInt(body, "capacity", &capacity));
  if (capacity < 0 || capacity > 100000) {
    return InvalidArgument("capacity must be between 0 and 100000");
  }
  w.slots = capacity;
  w.deployment = scope;
  w.heartbeat_ms = dispatcher.options().heartbeat_ms;
  return w;
}

// Checks every token first; the claims in order.
Result<std::vector<TaskClaims>> VerifyAll(const ApiContext& ctx,
                                          const std::vector<std::string>& tokens,
                                          const std::optional<DeploymentId>& scope) {
  std::vector<TaskClaims> out;
  out.reserve(tokens.size());
  for (const std::string& t : tokens) {
    ASSIGN_OR_RETURN(TaskClaims c, ctx.dispatcher->Verify(t));
    if (scope && c.deployment_id != scope->value()) {
      return PermissionDenied("a task token of another deployment was sent to this one");
    }
    out.push_back(std::move(c));
  }
  return out;
}

Result<std::vector<std::string>> ReadTokens(const Json& arr, const char* what) {
  if (!arr.is_array()) return InvalidArgument(std::string(what) + " must be an array");
  if (arr.size() > kMaxBatch) {
    return TooLarge(std::string(what) + " holds at most " + std::to_string(kMaxBatch) + " items");
  }
  std::vector<std::string> out;
  for (const Json& t : arr) {
    if (!t.is_string()) return InvalidArgument(std::string(what) + " must hold strings");
    out.push_back(t.get<std::string>());
  }
  return out;
}

Json TaskJson(const scheduler::TaskToRun& t) {
  Json env = Json::object();
  for (const auto& [k, v] : t.env) env[k] = v;  // later entries win, as the header says
  return {{"token", t.token},
          {"ti_id", t.claims.ti_id},
          {"try_number", t.claims.try_number},
          {"deployment_id", t.claims.deployment_id},
          {"dag_id", t.claims.dag_id},
          {"run_id", t.claims.run_id},
          {"task_id", t.claims.task_id},
          {"argv", t.argv},
          {"env", env},
          {"cwd", t.cwd},
          {"timeout_ms", t.timeout_ms},
          {"mask", t.mask},
          {"run_as_uid", t.run_as_uid ? Json(*t.run_as_uid) : Json(nullptr)}};
}

// What claim and heartbeat share: the credential, the path's scope, and a body naming the
// worker, with these fields allowed.
struct WorkerRequest {
  std::optional<DeploymentId> scope;
  Json body;
  store::WorkerInfo worker;
};
Result<WorkerRequest> ReadWorkerRequest(const ApiContext& ctx, const Request& req,
                                        std::initializer_list<std::string_view> allowed,
                                        std::initializer_list<std::string_view> required) {
  WorkerRequest w;
  ASSIGN_OR_RETURN(w.scope, Scope(ctx, req));
  ASSIGN_OR_RETURN(w.body, ParseObject(req.body));
  RETURN_IF_ERROR(CheckFields(w.body, allowed, required));
  ASSIGN_OR_RETURN(w.worker, ReadWorker(w.body, w.scope, *ctx.dispatcher));
  return w;
}

void RegisterUnder(Router& r, const ApiContext& ctx, const std::string& root) {
  r.Add("POST", root + "/claim", Wrap([ctx](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(
              WorkerRequest w,
              ReadWorkerRequest(ctx, req, {"worker_id", "hostname", "slots", "capacity", "wait_ms"},
                                {"worker_id", "hostname", "slots", "capacity"}));
          int slots = 0, wait_ms = 0;
          RETURN_IF_ERROR(ReadInt(w.body, "slots", &slots));
          RETURN_IF_ERROR(ReadInt(w.body, "wait_ms", &wait_ms));
          if (slots < 0 || slots > kMaxBatch) {
            return InvalidArgument("slots must be between 0 and " + std::to_string(kMaxBatch));
          }
          if (wait_ms < 0 || wait_ms > kMaxWaitMs) {
            return InvalidArgument("wait_ms must be between 0 and " + std::to_string(kMaxWaitMs));
          }
          ASSIGN_OR_RETURN(
              scheduler::Dispatcher::ClaimAnswer answer,
              ctx.dispatcher->Claim(w.worker, slots, std::chrono::milliseconds(wait_ms)));
          Json out = Json::array();
          for (const scheduler::TaskToRun& t : answer.tasks) out.push_back(TaskJson(t));
          Json body = {{"heartbeat_ms", ctx.dispatcher->options().heartbeat_ms}, {"tasks", out}};
          if (answer.claims_through_us) body["claims_through"] = *answer.claims_through_us;
          return JsonResponse(200, body);
        }));

  r.Add("POST", root + "/heartbeat", Wrap([ctx](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(WorkerRequest w,
                           ReadWorkerRequest(ctx, req,
                                             {"worker_id", "hostname", "slots", "capacity",
                                              "tokens", "claims_through"},
                                             {"worker_id", "hostname", "capacity", "tokens"}));
          std::optional<int64_t> claims_through;
          if (w.body.contains("claims_through")) {
            const Json& c = w.body["claims_through"];
            if (!c.is_number_integer() || c.get<int64_t>() < 0) {
              return InvalidArgument(
                  "claims_through must be a claim answer's claims_through (an integer >= 0)");
            }
            claims_through = c.get<int64_t>();
          }
          ASSIGN_OR_RETURN(std::vector<std::string> tokens, ReadTokens(w.body["tokens"], "tokens"));
          ASSIGN_OR_RETURN(std::vector<TaskClaims> held, VerifyAll(ctx, tokens, w.scope));
          ASSIGN_OR_RETURN(scheduler::Dispatcher::HeartbeatAnswer answer,
                           ctx.dispatcher->Heartbeat(w.worker, held, claims_through));
          Json renewed = Json::object();
          for (const auto& [ti, token] : answer.renewed) renewed[ti] = token;
          return JsonResponse(200, {{"stop", answer.stop}, {"renewed", renewed}});
        }));

  r.Add("POST", root + "/logs", Wrap([ctx](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(auto scope, Scope(ctx, req));
          ASSIGN_OR_RETURN(Json body, ParseObject(req.body));
          RETURN_IF_ERROR(CheckFields(body, {"chunks"}, {"chunks"}));
          const Json& chunks = body["chunks"];
          if (!chunks.is_array()) return InvalidArgument("chunks must be an array");
          std::vector<std::string> tokens;
          std::vector<std::string> data;
          for (const Json& c : chunks) {
            if (!c.is_object()) return InvalidArgument("chunks must hold objects");
            RETURN_IF_ERROR(CheckFields(c, {"token", "data"}, {"token", "data"}, "chunks[]."));
            if (!c["token"].is_string() || !c["data"].is_string()) {
              return InvalidArgument("chunks[].token and chunks[].data must be strings");
            }
            tokens.push_back(c["token"].get<std::string>());
            data.push_back(c["data"].get<std::string>());
          }
          ASSIGN_OR_RETURN(std::vector<TaskClaims> claims, VerifyAll(ctx, tokens, scope));
          ASSIGN_OR_RETURN(std::vector<bool> running, ctx.dispatcher->AreRunning(claims));
          if (!claims.empty() && std::find(running.begin(), running.end(), true) == running.end()) {
            return Ended(false);
          }
          for (size_t i = 0; i < claims.size(); ++i) {
            if (running[i]) RETURN_IF_ERROR(ctx.dispatcher->AppendLog(claims[i], data[i]));
          }
          return NoContent();
        }));

  r.Add("POST", root + "/finish", Wrap([ctx](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(auto scope, Scope(ctx, req));
          ASSIGN_OR_RETURN(Json body, ParseObject(req.body));
          RETURN_IF_ERROR(CheckFields(body, {"worker_id", "results"}, {"worker_id", "results"}));
          std::string worker_id;
          RETURN_IF_ERROR(ReadString(body, "worker_id", &worker_id));
          if (!model::LooksLikeUuid(worker_id)) return InvalidArgument("worker_id must be a UUID");
          const Json& results = body["results"];
          if (!results.is_array()) return InvalidArgument("results must be an array");
          std::vector<std::string> tokens;
          std::vector<store::TryOutcome> outcomes;
          for (const Json& x : results) {
            if (!x.is_object()) return InvalidArgument("results must hold objects");
            RETURN_IF_ERROR(CheckFields(x, {"token", "state", "return_value"}, {"token", "state"},
                                        "results[]."));
            std::string token, state;
            RETURN_IF_ERROR(ReadString(x, "token", &token, "results[]."));
            RETURN_IF_ERROR(ReadString(x, "state", &state, "results[]."));
            if (state != "success" && state != "failed" && state != "skipped") {
              return InvalidArgument("results[].state must be success, failed or skipped");
            }
            store::TryOutcome o;
            o.state = state;
            if (x.contains("return_value") && !x["return_value"].is_null()) {
              o.return_value = x["return_value"].dump();
            }
            tokens.push_back(std::move(token));
            outcomes.push_back(std::move(o));
          }
          ASSIGN_OR_RETURN(std::vector<TaskClaims> claims, VerifyAll(ctx, tokens, scope));
          for (size_t i = 0; i < claims.size(); ++i) {
            outcomes[i].ref = {claims[i].ti_id, claims[i].try_number};
          }
          ASSIGN_OR_RETURN(std::vector<bool> applied, ctx.dispatcher->Finish(worker_id, outcomes));
          if (!applied.empty() && std::find(applied.begin(), applied.end(), true) == applied.end()) {
            return Ended(true);
          }
          Json out = Json::array();
          for (size_t i = 0; i < applied.size(); ++i) {
            out.push_back({{"ti_id", claims[i].ti_id}, {"applied", applied[i]}});
          }
          return JsonResponse(200, {{"results", out}});
        }));
}

}  // namespace

void RegisterExecutionRoutes(Router& r, const ApiContext& ctx) {
  RegisterUnder(r, ctx, "/execution/v1");
  RegisterUnder(r, ctx, "/deployments/{deployment}/execution/v1");
}

}  // namespace tandem::api
