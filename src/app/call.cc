#include "app/call.h"

#include <cstdio>

namespace tandem::app {

std::optional<Json> CallQuiet(const Globals& g, const std::string& method,
                              const std::string& path, const Json& body, int* exit_code,
                              int* http_status, bool print_errors) {
  auto client = Client::Connect(g.target);
  if (!client.ok()) {
    *exit_code = Fail(client.status());
    return std::nullopt;
  }
  auto r = client->Send(method, path, body.is_null() ? "" : body.dump());
  if (!r.ok()) {
    *exit_code = Fail(r.status());
    return std::nullopt;
  }
  if (http_status) *http_status = r->status;
  if (r->status >= 400) {
    *exit_code = print_errors ? FailHttp(*r) : ExitCodeForHttp(r->status);
    return std::nullopt;
  }
  *exit_code = 0;
  if (r->body.empty()) return Json(nullptr);
  Json j = Json::parse(r->body, nullptr, false);
  if (j.is_discarded()) {
    *exit_code = Fail(Internal("the region answered with invalid JSON"));
    return std::nullopt;
  }
  return j;
}

int Call(const Globals& g, const std::string& method, const std::string& path, const Json& body,
         const std::function<void(const Json&)>& table) {
  int code = 0;
  auto j = CallQuiet(g, method, path, body, &code);
  if (!j) return code;
  if (g.format() == Format::kJson) {
    if (!j->is_null()) printf("%s\n", j->dump(2).c_str());
  } else if (table) {
    table(*j);
  }
  return 0;
}

std::string Cell(const Json& v) {
  if (v.is_null()) return "";
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

std::string AirflowRoot(const std::string& deployment) {
  return "/deployments/" + PathEscape(deployment) + "/api/v2";
}

}  // namespace tandem::app
