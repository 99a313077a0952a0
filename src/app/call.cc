#include "app/call.h"

#include <cstdio>
#include <iostream>
#include <iterator>

namespace tandem::app {

Result<HttpResult> Send(const Globals& g, const std::string& method, const std::string& path,
                        const Json& body) {
  ASSIGN_OR_RETURN(Client client, Client::Connect(g.target));
  client.set_read_timeout_seconds(g.read_timeout_seconds);
  return client.Send(method, path, body.is_null() ? "" : body.dump());
}

int Print(const Globals& g, const Result<HttpResult>& answer,
          const std::function<void(const Json&)>& table) {
  if (!answer.ok()) return Fail(answer.status());
  if (answer->status >= 400) return FailHttp(*answer);
  if (answer->body.empty()) return 0;
  Json j = Json::parse(answer->body, nullptr, false);
  if (j.is_discarded()) return Fail(Internal("the region answered with invalid JSON"));
  if (g.format() == Format::kJson) {
    printf("%s\n", j.dump(2).c_str());
  } else if (table) {
    table(j);
  }
  return 0;
}

int Call(const Globals& g, const std::string& method, const std::string& path, const Json& body,
         const std::function<void(const Json&)>& table) {
  return Print(g, Send(g, method, path, body), table);
}

std::string ValueOrStdin(const std::string& v) {
  if (v != "-") return v;
  std::string in((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  if (!in.empty() && in.back() == '\n') in.pop_back();
  if (!in.empty() && in.back() == '\r') in.pop_back();
  return in;
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
