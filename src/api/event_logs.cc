// The audit trail as it is read: Airflow REST API v2 event logs per deployment
// ({kAirflowRoot}/eventLogs[/{event_log_id}], the spec's EventLogResponse shapes, that
// deployment's part of the trail only), and the whole trail at /api/v1/audit for the platform.
// Every filter the spec documents is honoured; an unknown one is refused, never ignored.
#include <set>

#include "api/context.h"
#include "api/errors.h"
#include "api/json_util.h"
#include "api/pipeline_json.h"
#include "dag/timetable.h"
#include "store/audit.h"
#include "store/identities.h"
#include "store/pipelines.h"

namespace tandem::api {
namespace {

Json EventLogJson(const store::AuditEvent& e) {
  return {{"event_log_id", e.id},        {"when", e.at},
          {"dag_id", OptJson(e.dag_id)}, {"task_id", OptJson(e.task_id)},
          {"run_id", OptJson(e.run_id)}, {"map_index", nullptr},
          {"try_number", nullptr},       {"event", e.event},
          {"logical_date", nullptr},     {"owner", e.principal},
          {"extra", e.detail},           {"dag_display_name", OptJson(e.dag_id)}};
}

Json AuditJson(const store::AuditEvent& e) {
  Json detail = Json::parse(e.detail, nullptr, false);
  return {{"id", e.id},
          {"at", e.at},
          {"principal", e.principal},
          {"principal_id", e.principal_id},
          {"source", e.source},
          {"event", e.event},
          {"method", e.method},
          {"route", e.route},
          {"path", e.path},
          {"deployment_id", OptJson(e.deployment_id)},
          {"dag_id", OptJson(e.dag_id)},
          {"run_id", OptJson(e.run_id)},
          {"task_id", OptJson(e.task_id)},
          {"status", e.status},
          {"outcome", e.outcome},
          {"detail", detail.is_discarded() ? Json(e.detail) : detail}};
}

// Reads the filters `known` names into `q`; refuses any other parameter.
Status ReadFilters(const Request& req, const std::set<std::string>& known, store::AuditQuery& q) {
  for (const auto& [k, v] : req.query) {
    if (!known.count(k)) {
      return InvalidArgument("query parameter `" + k + "` is not a filter of this endpoint");
    }
  }
  auto one = [&](const char* name, std::optional<std::string>& out) {
    if (const std::string* v = req.Query(name)) out = *v;
  };
  one("dag_id", q.dag_id);
  one("task_id", q.task_id);
  one("run_id", q.run_id);
  one("event", q.event);
  one("outcome", q.outcome);
  one("after", q.after);
  one("before", q.before);
  if (const std::string* v = req.Query("owner")) q.principal = *v;
  if (const std::string* v = req.Query("principal")) q.principal = *v;
  ASSIGN_OR_RETURN(q.included_events, QueryValues(req, "included_events", {}));
  ASSIGN_OR_RETURN(q.excluded_events, QueryValues(req, "excluded_events", {}));
  for (const char* t : {"after", "before"}) {
    if (const std::string* v = req.Query(t); v != nullptr && !dag::ParseTime(*v).ok()) {
      return InvalidArgument("query parameter `" + std::string(t) +
                             "` must be an RFC 3339 time, e.g. 2025-03-04T00:00:00Z");
    }
  }
  return Status::Ok();
}

}  // namespace

void RegisterEventLogRoutes(Router& r, const ApiContext& ctx) {
  store::Store* store = ctx.store;
  store::Pipelines* pipelines = ctx.pipelines;
  store::AuditLog* audit = ctx.audit;
  const std::string base = std::string(kAirflowRoot) + "/eventLogs";
  // map_index and try_number are the spec's too: the trail records API calls, which have
  // neither, so they match only events without one (none, or every event with "-1"/null).
  r.Add("GET", base, Wrap([store, pipelines, audit](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolvePipelineDeployment(store, pipelines, req));
          store::AuditQuery q;
          RETURN_IF_ERROR(ReadFilters(req,
                                      {"limit", "offset", "order_by", "dag_id", "task_id", "run_id",
                                       "map_index", "try_number", "owner", "event",
                                       "excluded_events", "included_events", "before", "after"},
                                      q));
          ASSIGN_OR_RETURN(q.page, ReadPage(req, nullptr));
          q.order_by = q.page.order_by.empty() ? "id" : q.page.order_by;
          q.deployment_id = d.value();
          const bool impossible = (req.Query("map_index") && *req.Query("map_index") != "-1") ||
                                  req.Query("try_number") != nullptr;
          Json items = Json::array();
          int64_t total = 0;
          if (!impossible) {
            ASSIGN_OR_RETURN(model::Page<store::AuditEvent> p, audit->List(q));
            for (const auto& e : p.items) items.push_back(EventLogJson(e));
            total = p.total;
          }
          return JsonResponse(200, {{"event_logs", items}, {"total_entries", total}});
        }));
  r.Add("GET", base + "/{event_log_id}",
        Wrap([store, pipelines, audit](const Request& req) -> Result<Response> {
          ASSIGN_OR_RETURN(DeploymentId d, ResolvePipelineDeployment(store, pipelines, req));
          const std::string& id = req.params.at("event_log_id");
          int64_t n = 0;
          if (id.empty() || id.size() > 18 ||
              id.find_first_not_of("0123456789") != std::string::npos) {
            return InvalidArgument("`event_log_id` must be an integer, got `" + id + "`");
          }
          n = std::stoll(id);
          ASSIGN_OR_RETURN(store::AuditEvent e, audit->Get(n, d.value()));
          return JsonResponse(200, EventLogJson(e));
        }));

  // The platform's whole trail: every deployment's part, the platform's own, every refusal.
  r.Add("GET", "/api/v1/audit",
        Wrap([audit, identities = ctx.identities](const Request& req) -> Result<Response> {
          store::AuditQuery q;
          RETURN_IF_ERROR(ReadFilters(req,
                                      {"limit", "offset", "order_by", "deployment", "principal",
                                       "event", "outcome", "dag_id", "run_id", "task_id",
                                       "included_events", "excluded_events", "after", "before"},
                                      q));
          ASSIGN_OR_RETURN(q.page, ReadPage(req, nullptr));
          q.order_by = q.page.order_by.empty() ? "-id" : q.page.order_by;
          if (const std::string* d = req.Query("deployment")) {
            ASSIGN_OR_RETURN(auth::Target t, identities->TargetOf(*d));
            q.deployment_id = t.deployment_id;
          }
          ASSIGN_OR_RETURN(model::Page<store::AuditEvent> p, audit->List(q));
          Json items = Json::array();
          for (const auto& e : p.items) items.push_back(AuditJson(e));
          return JsonResponse(200, {{"events", items}, {"total_entries", p.total}});
        }));
}

}  // namespace tandem::api
