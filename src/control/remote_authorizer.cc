#include "control/remote_authorizer.h"

#include <nlohmann/json.hpp>

#include "api/auth.h"
#include "auth/api_token.h"
#include "rpc/client.h"

namespace tandem::control {

using Json = nlohmann::json;

RemoteAuthorizer::RemoteAuthorizer(std::vector<std::string> region_urls, const Clock* clock,
                                   std::chrono::milliseconds cache_ttl, tls::Trust trust)
    : urls_(std::move(region_urls)), trust_(std::move(trust)), clock_(clock), ttl_(cache_ttl) {}

Result<auth::Principal> PrincipalFromJson(const std::string& body) {
  Json j = Json::parse(body, nullptr, false);
  if (!j.is_object() || !j.contains("roles") || !j["roles"].is_array()) {
    return Internal("a region answered who a credential is with something else");
  }
  auth::Principal p;
  p.kind =
      j.value("kind", "") == "user" ? auth::Principal::Kind::kUser : auth::Principal::Kind::kToken;
  p.id = j.value("id", "");
  p.name = j.value("name", "");
  for (const Json& r : j["roles"]) {
    if (!r.is_object()) return Internal("a region answered a role that is not an object");
    auth::Binding b;
    ASSIGN_OR_RETURN(b.scope, auth::ParseScope(r.value("scope", "")));
    if (r.contains("scope_id") && r["scope_id"].is_string()) b.scope_id = r["scope_id"];
    ASSIGN_OR_RETURN(b.role, auth::ParseRole(b.scope, r.value("role", "")));
    p.bindings.push_back(std::move(b));
  }
  return p;
}

Result<std::shared_ptr<const auth::Principal>> RemoteAuthorizer::Ask(
    const std::string& credential) {
  const std::string key = auth::SecretHash(credential);
  const MonoTime now = clock_->Now();
  size_t first = 0;
  {
    std::lock_guard lock(mu_);
    auto it = cache_.find(key);
    if (it != cache_.end() && now - it->second.at < ttl_) return it->second.principal;
    if (cache_.size() > 10000) cache_.clear();
    first = first_;
  }
  Status last = Unavailable("no region answered who the credential is");
  for (size_t i = 0; i < urls_.size(); ++i) {
    const size_t at = (first + i) % urls_.size();
    rpc::Client c(urls_[at], credential, std::chrono::seconds(2), "", trust_);
    Result<rpc::Reply> r = c.Call("GET", "/api/v1/whoami");
    if (!r.ok()) {
      last = r.status();
      continue;
    }
    Result<std::shared_ptr<const auth::Principal>> out = Unauthenticated("");
    if (r->status == 200) {
      ASSIGN_OR_RETURN(auth::Principal p, PrincipalFromJson(r->body));
      out = std::make_shared<const auth::Principal>(std::move(p));
    } else if (r->status == 401) {
      Json j = Json::parse(r->body, nullptr, false);
      out = Unauthenticated(j.is_object() ? j.value("detail", "the credential is not valid")
                                          : "the credential is not valid");
    } else {
      last = Unavailable("region " + urls_[at] + " answered " + std::to_string(r->status) +
                         " when asked who the credential is");
      continue;
    }
    std::lock_guard lock(mu_);
    first_ = at;
    cache_.insert_or_assign(key, Entry{now, out});
    return out;
  }
  return Unavailable("cannot check the credential: " + last.message());
}

Status RemoteAuthorizer::Check(api::Request& req, auth::Need need) {
  ASSIGN_OR_RETURN(std::string credential, api::BearerCredential(req));
  ASSIGN_OR_RETURN(std::shared_ptr<const auth::Principal> p, Ask(credential));
  req.principal = p;
  if (!auth::Allows(*p, need, {})) {
    return PermissionDenied(p->name + " may not do this: it needs the " +
                            std::string(auth::NeedName(need)) + " role or higher");
  }
  return Status::Ok();
}

}  // namespace tandem::control
