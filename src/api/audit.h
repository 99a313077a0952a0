// The region's audit trail writer: after each request, what it was and how it ended goes to the
// metadata's append-only audit log (store/audit.h) — every write, every refusal (401, 403, 429)
// and every login, by whom and from where, with the request's body as a diff whose secrets are
// masked. Reads that succeed are not recorded, nor are the workers' Execution API calls and the
// pair's internal ones (their own logs and the DR event log tell those).
//
// Only the region that may write records (the active one); a standby's refusals go to its log.
// An event the database will not take is logged and the request's answer stands: the trail
// never fails a request that already happened.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "api/http.h"
#include "store/audit.h"
#include "store/identities.h"

namespace tandem::api {

class RegionAudit {
 public:
  RegionAudit(store::AuditLog* log, store::Identities* identities, std::function<bool()> may_write)
      : log_(log), identities_(identities), may_write_(std::move(may_write)) {}

  void Record(const Request& req, const Response& res);

 private:
  store::AuditLog* log_;
  store::Identities* identities_;
  std::function<bool()> may_write_;
};

// What the trail records of a request and its answer: writes and refusals, not reads that
// succeeded, nor the workers' and the pair's calls (nullopt). The deployment is not resolved.
std::optional<store::AuditEvent> AuditEventOf(const Request& req, const Response& res);

// An event as the control plane sends it to the active region's POST /internal/v1/audit, and
// back: every field checked (InvalidArgument naming the first that is wrong).
std::string AuditEventToWire(const store::AuditEvent& e);
Result<store::AuditEvent> AuditEventFromWire(const std::string& body);

// The event a route is recorded as: the method and the last literal segment of its pattern, in
// snake case ("POST .../dags/{dag_id}/dagRuns" -> "post_dag_runs"); "login" for POST /auth/token.
std::string AuditEventName(const std::string& method, const std::string& route);
// The request's body as the trail keeps it: JSON with every secret replaced by "***" (sensitive
// names at any depth, `value` where `is_secret` is true or the key in the path is sensitive,
// passwords), bundle files as their sizes, anything else as its size.
std::string MaskedBody(const Request& req);

}  // namespace tandem::api
