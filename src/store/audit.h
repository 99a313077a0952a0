// The audit trail in the metadata database: what each write and each refusal was, by whom,
// from where, and how it ended (the table is append-only: a trigger refuses changes). Written
// by the active region only; replicated and promoted with everything else, so it survives a
// failover as written.
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "model/deployment.h"
#include "pg/conn.h"

namespace tandem::store {

struct AuditEvent {
  int64_t id = 0;  // assigned
  std::string at;  // assigned, RFC 3339
  std::string principal;
  std::string principal_id;
  std::string source;
  std::string event;
  std::string method;
  std::string route;
  std::string path;
  std::optional<std::string> deployment_id, dag_id, run_id, task_id;
  int status = 0;
  std::string outcome;  // ok | refused | failed
  std::string detail;   // JSON text, secrets masked
};

struct AuditQuery {
  std::optional<std::string> deployment_id;  // one deployment's events only
  std::optional<std::string> dag_id, run_id, task_id, principal, event, outcome;
  std::vector<std::string> included_events, excluded_events;
  std::optional<std::string> after, before;  // RFC 3339
  std::string order_by = "id";  // id, at, event, principal, dag_id (a '-' prefix: descending)
  model::PageRequest page;
};

class AuditLog {
 public:
  explicit AuditLog(pg::Pool* pool) : pool_(pool) {}
  Status Append(const AuditEvent& e);
  Result<model::Page<AuditEvent>> List(const AuditQuery& q);
  // NotFound unless the event exists (and, with `deployment_id`, belongs to that deployment).
  Result<AuditEvent> Get(int64_t id, const std::optional<std::string>& deployment_id);

 private:
  pg::Pool* pool_;
};

}  // namespace tandem::store
