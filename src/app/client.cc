#include "app/client.h"

#include <httplib.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "base/clock.h"
#include "base/fs.h"
#include "base/text.h"
#include "dns/dns.h"
#include "tls/http_client.h"

namespace tandem::app {

std::string PlatformFile(const std::string& state_dir) { return state_dir + "/platform.json"; }

namespace {

Result<nlohmann::json> ReadPlatform(const Target& target) {
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
  return j;
}

// The resolver for --dns (none without it).
Result<std::shared_ptr<dns::Resolver>> ResolverFor(const Target& target) {
  if (target.dns_server.empty()) return std::shared_ptr<dns::Resolver>();
  ASSIGN_OR_RETURN(dns::Server server, dns::ParseServer(target.dns_server));
  return std::make_shared<dns::Resolver>(server, std::chrono::seconds(2));
}

}  // namespace

std::string CredentialFile(const std::string& state_dir) { return state_dir + "/credential"; }
std::string CaFile(const std::string& state_dir) { return state_dir + "/tls/ca.crt"; }

Result<std::string> ResolveCaFile(const Target& target) {
  if (!target.ca_file.empty()) {
    if (!PathExists(target.ca_file)) {
      return NotFound("the CA file " + target.ca_file + " (--ca-file) does not exist");
    }
    return target.ca_file;
  }
  const std::string up = CaFile(target.state_dir);
  return PathExists(up) ? up : std::string();
}
std::string SessionFile(const std::string& state_dir) { return state_dir + "/session"; }

Result<std::string> ResolveToken(const Target& target) {
  if (!target.token_file.empty()) {
    Result<std::string> t = ReadFile(target.token_file);
    if (!t.ok()) {
      return NotFound("the token file " + target.token_file +
                      " cannot be read: " + t.status().message());
    }
    return std::string(TrimSpace(*t));
  }
  if (const char* env = std::getenv("TANDEM_TOKEN"); env != nullptr && *env != '\0') {
    return std::string(TrimSpace(env));
  }
  for (const std::string& f : {SessionFile(target.state_dir), CredentialFile(target.state_dir)}) {
    Result<std::string> t = ReadFile(f);
    if (t.ok() && !TrimSpace(*t).empty()) return std::string(TrimSpace(*t));
  }
  return std::string();
}

Result<Client> Client::Connect(const Target& target) {
  ASSIGN_OR_RETURN(std::string token, ResolveToken(target));
  ASSIGN_OR_RETURN(std::string ca_file, ResolveCaFile(target));
  if (!target.url.empty()) {
    ASSIGN_OR_RETURN(auto resolver, ResolverFor(target));
    Client c(target.url, resolver);
    c.set_token(token);
    c.set_ca_file(ca_file);
    return c;
  }
  ASSIGN_OR_RETURN(nlohmann::json j, ReadPlatform(target));
  std::string active;
  if (j.contains("control") && j["control"].is_string()) {
    // The control plane knows which region is active now.
    Client control(j["control"].get<std::string>());
    control.set_token(token);
    control.set_ca_file(ca_file);
    auto st = control.Send("GET", "/api/v1/dr/status");
    if (st.ok() && st->status == 200) {
      auto s = nlohmann::json::parse(st->body, nullptr, false);
      if (s.is_object() && s.contains("active") && s["active"].is_string()) {
        active = s["active"].get<std::string>();
      }
    }
  }
  for (const auto& r : j["regions"]) {
    if (!r.contains("url")) continue;
    if (active.empty() ? r.value("active", false) : r.value("name", "") == active) {
      Client c(r["url"].get<std::string>());
      c.set_token(token);
      c.set_ca_file(ca_file);
      return c;
    }
  }
  return Unavailable(PlatformFile(target.state_dir) + " names no active region");
}

Result<Client> Client::ConnectControl(const Target& target) {
  ASSIGN_OR_RETURN(std::string token, ResolveToken(target));
  ASSIGN_OR_RETURN(std::string ca_file, ResolveCaFile(target));
  if (!target.control_url.empty()) {
    ASSIGN_OR_RETURN(auto resolver, ResolverFor(target));
    Client c(target.control_url, resolver);
    c.set_token(token);
    c.set_ca_file(ca_file);
    return c;
  }
  ASSIGN_OR_RETURN(nlohmann::json j, ReadPlatform(target));
  if (!j.contains("control") || !j["control"].is_string()) {
    return Unavailable("the platform in " + target.state_dir +
                       " has no control plane (pass --control URL)");
  }
  Client c(j["control"].get<std::string>());
  c.set_token(token);
  c.set_ca_file(ca_file);
  return c;
}

Result<HttpResult> Client::Send(const std::string& method, const std::string& path,
                                const std::string& body, const Headers& headers) const {
  if (!resolver_) {
    bool connected = false;
    return SendOnce(method, path, body, headers, "", &connected);
  }
  ASSIGN_OR_RETURN(dns::HostPort where, dns::ParseHttpUrl(base_));
  const MonoTime deadline = RealClock().Now() + std::chrono::seconds(30);
  Backoff backoff(std::chrono::milliseconds(200), std::chrono::seconds(2));
  while (true) {
    Result<std::string> address = dns::ConnectAddress(resolver_.get(), where.host);
    Result<HttpResult> r = Unavailable("not sent");
    bool connected = false;
    if (address.ok()) {
      r = SendOnce(method, path, body, headers, *address, &connected);
    } else {
      r = Unavailable("cannot look up " + where.host + ": " + address.status().message());
    }
    // Retried: a name that does not resolve (yet), a connection never made (nothing was sent),
    // and a region's "not the active one" or "not now" (nothing was done).
    const bool retry =
        !r.ok() ? !connected || method == "GET" : r->status == 421 || r->status == 503;
    if (!retry || RealClock().Now() >= deadline) return r;
    resolver_->Forget(where.host);
    RealClock().SleepFor(backoff.Next());
  }
}

Result<HttpResult> Client::SendOnce(const std::string& method, const std::string& path,
                                    const std::string& body, const Headers& headers,
                                    const std::string& address, bool* connected) const {
  httplib::Client cli(base_);
  if (base_.starts_with("https://")) {
    cli.enable_server_certificate_verification(true);
    if (!ca_file_.empty()) cli.set_ca_cert_path(ca_file_);
  }
  if (!address.empty()) {
    auto where = dns::ParseHttpUrl(base_);
    if (where.ok() && address != where->host) cli.set_hostname_addr_map({{where->host, address}});
  }
  cli.set_connection_timeout(5);
  cli.set_read_timeout(read_timeout_s_);
  httplib::Headers h(headers.begin(), headers.end());
  if (!token_.empty()) h.emplace("Authorization", "Bearer " + token_);
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
    *connected = r.error() != httplib::Error::Connection;
    return Unavailable("cannot reach the region at " + base_ + ": " +
                       tls::DescribeError(cli, r.error(), {ca_file_}));
  }
  *connected = true;
  return HttpResult{r->status, r->body};
}

std::string PathEscape(const std::string& s) { return PercentEncode(s); }

}  // namespace tandem::app
