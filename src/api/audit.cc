#include "api/audit.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "api/json_util.h"
#include "model/validate.h"

namespace tandem::api {
namespace {

constexpr size_t kMaxDetailBytes = size_t{16} * 1024;

void MaskSecrets(Json& j) {
  if (j.is_array()) {
    for (Json& x : j) MaskSecrets(x);
    return;
  }
  if (!j.is_object()) return;
  const bool secret = j.contains("is_secret") && j["is_secret"] == true;
  const bool sensitive_key = j.contains("key") && j["key"].is_string() &&
                             model::IsSensitiveName(j["key"].get<std::string>());
  for (auto& [k, v] : j.items()) {
    if (k == "password" || k == "extra" || model::IsSensitiveName(k) ||
        (k == "value" && (secret || sensitive_key))) {
      if (!v.is_null()) v = kMask;
    } else {
      MaskSecrets(v);
    }
  }
}

}  // namespace

std::string AuditEventName(const std::string& method, const std::string& route) {
  if (route.size() >= 11 && route.compare(route.size() - 11, 11, "/auth/token") == 0) {
    return "login";
  }
  std::string last;
  size_t end = route.size();
  while (end > 0) {
    const size_t start = route.rfind('/', end - 1);
    const std::string seg = route.substr(start + 1, end - start - 1);
    if (!seg.empty() && seg.front() != '{') {
      last = seg;
      break;
    }
    if (start == std::string::npos || start == 0) break;
    end = start;
  }
  std::string out;
  for (char c : method) out += static_cast<char>(tolower(static_cast<unsigned char>(c)));
  out += '_';
  for (size_t i = 0; i < last.size(); ++i) {
    const char c = last[i];
    if (c >= 'A' && c <= 'Z') {
      if (i > 0) out += '_';
      out += static_cast<char>(c - 'A' + 'a');
    } else {
      out += c == '-' ? '_' : c;
    }
  }
  return out;
}

std::string MaskedBody(const Request& req) {
  if (req.body.empty()) return "null";
  // Depth-limited like every body (a refused body may nest a million levels deep).
  Result<Json> parsed = ParseJson(req.body, "the request body");
  if (!parsed.ok()) return Json{{"bytes", req.body.size()}}.dump();
  Json j = std::move(*parsed);
  // A bundle's files: their sizes, not their text.
  if (j.is_object() && j.contains("files") && j["files"].is_object()) {
    for (auto& [name, content] : j["files"].items()) {
      content = content.is_string() ? Json(content.get<std::string>().size()) : Json(nullptr);
    }
  }
  for (const char* param : {"key", "variable_key"}) {
    auto it = req.params.find(param);
    if (it != req.params.end() && model::IsSensitiveName(it->second) && j.is_object() &&
        j.contains("value")) {
      j["value"] = kMask;
    }
  }
  MaskSecrets(j);
  std::string out = j.dump();
  if (out.size() > kMaxDetailBytes)
    return Json{{"bytes", req.body.size()}, {"truncated", true}}.dump();
  return out;
}

std::optional<store::AuditEvent> AuditEventOf(const Request& req, const Response& res) {
  if (req.route.empty() || req.need == auth::Need::kWorker || req.need == auth::Need::kPair) {
    return std::nullopt;
  }
  const bool refused = res.status == 401 || res.status == 403 || res.status == 429;
  if (req.method == "GET" && !refused) return std::nullopt;
  store::AuditEvent e;
  e.event = AuditEventName(req.method, req.route);
  e.method = req.method;
  e.route = req.route;
  e.path = req.path;
  e.source = req.remote_address;
  e.status = res.status;
  e.outcome = res.status < 400 ? "ok" : refused ? "refused" : "failed";
  if (req.principal) {
    e.principal = req.principal->name;
    e.principal_id = req.principal->id;
  } else if (e.event == "login") {
    Result<Json> parsed = ParseJson(req.body, "the request body");
    const Json b = parsed.ok() ? *parsed : Json();
    e.principal = b.is_object() && b.contains("username") && b["username"].is_string()
                      ? "user " + b["username"].get<std::string>()
                      : "anonymous";
  } else {
    e.principal = "anonymous";
  }
  Json detail = {{"body", Json::parse(MaskedBody(req), nullptr, false)}};
  if (res.status >= 400) {
    Json r = Json::parse(res.body, nullptr, false);
    if (r.is_object() && r.contains("detail")) detail["error"] = r["detail"];
  }
  if (!req.query.empty()) {
    Json q = Json::object();
    for (const auto& [k, v] : req.query) q[k] = v;
    detail["query"] = q;
  }
  e.detail = detail.dump();
  auto param = [&](const char* name) {
    auto it = req.params.find(name);
    return it == req.params.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
  e.dag_id = param("dag_id");
  e.run_id = param("dag_run_id");
  e.task_id = param("task_id");
  return e;
}

std::string AuditEventToWire(const store::AuditEvent& e) {
  return Json{{"principal", e.principal},
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
              {"detail", Json::parse(e.detail, nullptr, false)}}
      .dump();
}

Result<store::AuditEvent> AuditEventFromWire(const std::string& body) {
  ASSIGN_OR_RETURN(Json j, ParseObject(body));
  RETURN_IF_ERROR(CheckFields(j,
                              {"principal", "principal_id", "source", "event", "method", "route",
                               "path", "deployment_id", "dag_id", "run_id", "task_id", "status",
                               "outcome", "detail"},
                              {"principal", "source", "event", "method", "route", "path",
                               "status", "outcome", "detail"}));
  store::AuditEvent e;
  for (auto [name, field] : {std::pair{"principal", &e.principal},
                             {"principal_id", &e.principal_id},
                             {"source", &e.source},
                             {"event", &e.event},
                             {"method", &e.method},
                             {"route", &e.route},
                             {"path", &e.path},
                             {"outcome", &e.outcome}}) {
    RETURN_IF_ERROR(ReadString(j, name, field));
    if (field->size() > 4096) {
      return InvalidArgument(std::string("field `") + name + "` is longer than 4096 bytes");
    }
  }
  for (auto [name, field] : {std::pair{"deployment_id", &e.deployment_id},
                             {"dag_id", &e.dag_id},
                             {"run_id", &e.run_id},
                             {"task_id", &e.task_id}}) {
    if (!j.contains(name) || j[name].is_null()) continue;
    if (!j[name].is_string()) return InvalidArgument(std::string("field `") + name + "` must be a string");
    *field = j[name].get<std::string>();
  }
  if (e.deployment_id && !model::LooksLikeUuid(*e.deployment_id)) {
    return InvalidArgument("field `deployment_id` must be a UUID");
  }
  if (!j["status"].is_number_integer() || j["status"].get<int>() < 100 ||
      j["status"].get<int>() > 599) {
    return InvalidArgument("field `status` must be an HTTP status");
  }
  e.status = j["status"].get<int>();
  if (e.outcome != "ok" && e.outcome != "refused" && e.outcome != "failed") {
    return InvalidArgument("field `outcome` must be ok, refused or failed");
  }
  if (!j["detail"].is_object()) return InvalidArgument("field `detail` must be an object");
  e.detail = j["detail"].dump();
  return e;
}

void RegionAudit::Record(const Request& req, const Response& res) {
  std::optional<store::AuditEvent> event = AuditEventOf(req, res);
  if (!event) return;
  store::AuditEvent& e = *event;
  if (auto it = req.params.find("deployment"); it != req.params.end()) {
    Result<auth::Target> t = identities_->TargetOf(it->second);
    if (t.ok()) e.deployment_id = t->deployment_id;
  }
  if (!may_write_()) {
    spdlog::info("audit (not recorded: this region is not active): {} {} {} -> {} by {} from {}",
                 e.event, e.method, e.path, e.status, e.principal, e.source);
    return;
  }
  Status s = log_->Append(e);
  if (!s.ok()) {
    spdlog::warn("the audit trail did not take {} {} -> {} by {}: {}", e.method, e.path, e.status,
                 e.principal, s.message());
  }
}

}  // namespace tandem::api
