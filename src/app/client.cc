#include "app/client.h"

#include <httplib.h>

#include <nlohmann/json.hpp>

#include "base/fs.h"
#include "base/text.h"

namespace tandem::app {

std::string PlatformFile(const std::string& state_dir) { return state_dir + "/platform.json"; }

Result<Client> Client::Connect(const Target& target) {
  if (!target.url.empty()) return Client(target.url);
  std::string file = PlatformFile(target.state_dir);
  auto text = ReadFile(file);
  if (!text.ok()) {
    return Unavailable("no running platform found in " + target.state_dir +
                       " (start one with `tandem up --state-dir " + target.state_dir +
                       "`, or pass --url)");
  }
  auto j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.contains("regions") || !j["regions"].is_array()) {
    return Internal(file + " is not a valid platform file");
  }
  for (const auto& r : j["regions"]) {
    if (r.value("active", false) && r.contains("url")) return Client(r["url"].get<std::string>());
  }
  return Unavailable(file + " names no active region");
}

Result<HttpResult> Client::Send(const std::string& method, const std::string& path,
                                const std::string& body, const Headers& headers) const {
  httplib::Client cli(base_);
  cli.set_connection_timeout(5);
  cli.set_read_timeout(60);
  httplib::Headers h(headers.begin(), headers.end());
  httplib::Result r(nullptr, httplib::Error::Unknown);
  const char* ct = "application/json";
  if (method == "GET") {
    r = cli.Get(path, h);
  } else if (method == "POST") {
    r = cli.Post(path, h, body, ct);
  } else if (method == "PUT") {
    r = cli.Put(path, h, body, ct);
  } else if (method == "PATCH") {
    r = cli.Patch(path, h, body, ct);
  } else if (method == "DELETE") {
    r = cli.Delete(path, h);
  } else {
    return InvalidArgument("unsupported method " + method);
  }
  if (!r) {
    return Unavailable("cannot reach the region at " + base_ + ": " +
                       httplib::to_string(r.error()));
  }
  return HttpResult{r->status, r->body};
}

std::string PathEscape(const std::string& s) { return PercentEncode(s); }

}  // namespace tandem::app
