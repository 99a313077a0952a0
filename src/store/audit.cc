#include "store/audit.h"

#include <map>

#include "store/sql.h"

namespace tandem::store {
namespace {

using pg::Rows;

const std::string kColumns = "id, " + sql::Ts("at") +
                             ", principal, principal_id, source, event, method, route, path, "
                             "deployment_id, dag_id, run_id, task_id, status, outcome, detail";

AuditEvent FromRow(const Rows& r, int i) {
  AuditEvent e;
  e.id = r.Int(i, 0);
  e.at = r.Text(i, 1);
  e.principal = r.Text(i, 2);
  e.principal_id = r.Text(i, 3);
  e.source = r.Text(i, 4);
  e.event = r.Text(i, 5);
  e.method = r.Text(i, 6);
  e.route = r.Text(i, 7);
  e.path = r.Text(i, 8);
  auto opt = [&](int col) {
    return r.IsNull(i, col) ? std::nullopt : std::optional<std::string>(r.Text(i, col));
  };
  e.deployment_id = opt(9);
  e.dag_id = opt(10);
  e.run_id = opt(11);
  e.task_id = opt(12);
  e.status = static_cast<int>(r.Int(i, 13));
  e.outcome = r.Text(i, 14);
  e.detail = r.Text(i, 15);
  return e;
}

}  // namespace

Status AuditLog::Append(const AuditEvent& e) {
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  return c
      ->Exec(
          "INSERT INTO audit_events (principal, principal_id, source, event, method, route, "
          "path, deployment_id, dag_id, run_id, task_id, status, outcome, detail) VALUES "
          "($1, $2, $3, $4, $5, $6, $7, $8::uuid, $9, $10, $11, $12, $13, $14::jsonb)",
          {e.principal, e.principal_id, e.source, e.event, e.method, e.route, e.path,
           sql::Opt(e.deployment_id), sql::Opt(e.dag_id), sql::Opt(e.run_id), sql::Opt(e.task_id),
           sql::N(e.status), e.outcome, e.detail.empty() ? std::string("{}") : e.detail})
      .status();
}

Result<model::Page<AuditEvent>> AuditLog::List(const AuditQuery& q) {
  std::string where = "true";
  pg::Params params;
  auto add = [&](const std::string& condition, const std::string& value) {
    params.emplace_back(value);
    std::string c = condition;
    c.replace(c.find('?'), 1, "$" + std::to_string(params.size()));
    where += " AND " + c;
  };
  if (q.deployment_id) add("deployment_id = ?::uuid", *q.deployment_id);
  if (q.dag_id) add("dag_id = ?", *q.dag_id);
  if (q.run_id) add("run_id = ?", *q.run_id);
  if (q.task_id) add("task_id = ?", *q.task_id);
  if (q.principal) add("principal = ?", *q.principal);
  if (q.event) add("event = ?", *q.event);
  if (q.outcome) add("outcome = ?", *q.outcome);
  if (q.after) add("at >= ?::timestamptz", *q.after);
  if (q.before) add("at <= ?::timestamptz", *q.before);
  auto add_list = [&](const char* condition, const std::vector<std::string>& values) {
    if (values.empty()) return;
    std::string list;
    for (const std::string& v : values) {
      params.emplace_back(v);
      list += (list.empty() ? "$" : ", $") + std::to_string(params.size());
    }
    where += std::string(" AND event ") + condition + " (" + list + ")";
  };
  add_list("IN", q.included_events);
  add_list("NOT IN", q.excluded_events);
  std::string order = q.order_by.empty() ? "id" : q.order_by;
  const bool desc = order[0] == '-';
  if (desc) order = order.substr(1);
  static const std::map<std::string, std::string> kOrders = {
      {"id", "id"},           {"event_log_id", "id"}, {"at", "at"},
      {"when", "at"},         {"event", "event"},     {"principal", "principal"},
      {"owner", "principal"}, {"dag_id", "dag_id"},   {"run_id", "run_id"},
      {"task_id", "task_id"}};
  auto o = kOrders.find(order);
  if (o == kOrders.end()) {
    return InvalidArgument("cannot order audit events by `" + order +
                           "` (one of id, when, event, owner, dag_id, run_id, task_id)");
  }
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  ASSIGN_OR_RETURN(Rows n, c->Exec("SELECT count(*) FROM audit_events WHERE " + where, params));
  model::Page<AuditEvent> out;
  out.total = n.Int(0, 0);
  ASSIGN_OR_RETURN(
      Rows r,
      c->Exec("SELECT " + kColumns + " FROM audit_events WHERE " + where + " ORDER BY " +
                  o->second + (desc ? " DESC" : "") + ", id" + (desc ? " DESC" : "") + " LIMIT " +
                  std::to_string(q.page.limit) + " OFFSET " + std::to_string(q.page.offset),
              params));
  out.items.reserve(r.size());
  for (int i = 0; i < r.size(); ++i) out.items.push_back(FromRow(r, i));
  return out;
}

Result<AuditEvent> AuditLog::Get(int64_t id, const std::optional<std::string>& deployment_id) {
  ASSIGN_OR_RETURN(pg::Pool::Lease c, pool_->Acquire());
  ASSIGN_OR_RETURN(Rows r, c->Exec("SELECT " + kColumns +
                                       " FROM audit_events WHERE id = $1 AND ($2::uuid IS NULL "
                                       "OR deployment_id = $2::uuid)",
                                   {std::to_string(id), sql::Opt(deployment_id)}));
  if (r.size() == 0)
    return NotFound("The Event Log with id: `" + std::to_string(id) + "` was not found");
  return FromRow(r, 0);
}

}  // namespace tandem::store
