#include "api/auth.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "api/json_util.h"
#include "auth/api_token.h"
#include "auth/session.h"
#include "crypto/secret_box.h"

namespace tandem::api {
namespace {

constexpr const char* kHowTo =
    "send Authorization: Bearer <token> (`tandem up` wrote the platform owner's to "
    "<state-dir>/credential; `tandem token create` makes others)";

std::string Describe(const auth::Principal& p) { return p.name; }

}  // namespace

Result<std::string> BearerCredential(const Request& req) {
  auto it = req.headers.find("authorization");
  if (it == req.headers.end() || it->second.empty()) {
    return Unauthenticated(std::string("this request needs a credential: ") + kHowTo);
  }
  const std::string& h = it->second;
  if (h.size() > kMaxAuthorizationBytes) {
    return Unauthenticated("the Authorization header is longer than " +
                           std::to_string(kMaxAuthorizationBytes) + " bytes");
  }
  constexpr std::string_view kBearer = "Bearer ";
  constexpr std::string_view kBasic = "Basic ";
  if (h.size() > kBasic.size() && std::string_view(h).substr(0, kBasic.size()) == kBasic) {
    Result<std::string> pair = Base64Decode(std::string_view(h).substr(kBasic.size()));
    const size_t colon = pair.ok() ? pair->find(':') : std::string::npos;
    if (colon == std::string::npos || colon + 1 == pair->size()) {
      return Unauthenticated(
          "the Authorization header's Basic credential is not base64 of name:password; the "
          "password must be an API token (any name)");
    }
    return pair->substr(colon + 1);
  }
  if (h.size() <= kBearer.size() || std::string_view(h).substr(0, kBearer.size()) != kBearer) {
    return Unauthenticated(std::string("the Authorization header is not a bearer credential: ") +
                           kHowTo);
  }
  return h.substr(kBearer.size());
}

Result<std::shared_ptr<const auth::Principal>> RegionAuthorizer::Authenticate(
    const std::string& credential) {
  const std::string key = auth::SecretHash(credential);
  const MonoTime now = clock_->Now();
  {
    std::lock_guard lock(mu_);
    auto it = cache_.find(key);
    if (it != cache_.end() && now - it->second.at < ttl_) return it->second.principal;
    if (cache_.size() > 10000) cache_.clear();  // a storm of made-up tokens stays bounded
  }
  Result<std::shared_ptr<const auth::Principal>> out =
      Unauthenticated("the credential is not a tandem token");
  Result<auth::Principal> p = Unauthenticated("the credential is not a tandem token");
  if (auth::LooksLikeJwt(credential)) {
    const int64_t unix_now =
        std::chrono::duration_cast<std::chrono::seconds>(clock_->Wall().time_since_epoch()).count();
    Result<auth::SessionClaims> c = auth::VerifySession(session_key_, credential, unix_now);
    p = c.ok() ? identities_->AuthenticateSession(c->user_id, c->generation)
               : Result<auth::Principal>(c.status());
  } else {
    Result<auth::TokenParts> parts = auth::ParseToken(credential);
    p = parts.ok() ? identities_->AuthenticateToken(*parts)
                   : Result<auth::Principal>(parts.status());
  }
  if (p.ok()) {
    out = std::make_shared<const auth::Principal>(std::move(*p));
  } else if (p.status().code() == Code::kUnauthenticated) {
    out = p.status();
  } else {
    return p.status();  // the database failed: not remembered
  }
  std::lock_guard lock(mu_);
  cache_.insert_or_assign(key, Entry{now, out});
  return out;
}

Result<auth::Target> RegionAuthorizer::TargetOf(const Request& req, auth::Need need) {
  switch (need) {
    case auth::Need::kDeploymentViewer:
    case auth::Need::kDeploymentEditor:
    case auth::Need::kDeploymentAdmin: {
      auto d = req.params.find("deployment");
      if (d == req.params.end()) return Internal("the route names no deployment");
      return identities_->TargetOf(d->second);
    }
    case auth::Need::kWorkspaceViewer:
    case auth::Need::kWorkspaceAdmin: {
      auto w = req.params.find("workspace");
      if (w == req.params.end()) return Internal("the route names no workspace");
      ASSIGN_OR_RETURN(store::Workspace ws, identities_->GetWorkspace(w->second));
      return auth::Target{ws.id, ""};
    }
    case auth::Need::kWorkspaceEditor: {
      // Creating a deployment: in the workspace its body names, `default` when none.
      // The body as the handler will read it (depth-limited); a body it will refuse names
      // no workspace, and is refused by the handler after this check.
      std::string ref = "default";
      Result<Json> j = ParseJson(req.body, "the request body");
      if (j.ok() && j->is_object() && j->contains("workspace") && (*j)["workspace"].is_string()) {
        ref = (*j)["workspace"].get<std::string>();
      }
      ASSIGN_OR_RETURN(store::Workspace ws, identities_->GetWorkspace(ref));
      return auth::Target{ws.id, ""};
    }
    default:
      return auth::Target{};
  }
}

Status RegionAuthorizer::Check(Request& req, auth::Need need) {
  ASSIGN_OR_RETURN(std::string credential, BearerCredential(req));
  ASSIGN_OR_RETURN(std::shared_ptr<const auth::Principal> p, Authenticate(credential));
  req.principal = p;
  Result<auth::Target> t = TargetOf(req, need);
  if (!t.ok()) {
    // What does not exist is told only to those who could see it if it did: a platform role
    // sees everything; anyone else learns no more from a missing name than from a forbidden one.
    if (t.status().code() == Code::kNotFound && auth::PlatformRole(*p)) return Status::Ok();
    if (t.status().code() == Code::kNotFound) {
      return PermissionDenied(Describe(*p) + " may not do this: it needs the " +
                              std::string(auth::NeedName(need)) + " role");
    }
    return t.status();
  }
  if (!auth::Allows(*p, need, *t)) {
    return PermissionDenied(Describe(*p) + " may not do this: it needs the " +
                            std::string(auth::NeedName(need)) + " role or higher");
  }
  return Status::Ok();
}

namespace {

// Drops what left the window; the count that is left.
size_t Prune(std::vector<MonoTime>& v, MonoTime now) {
  std::erase_if(v, [now](MonoTime t) { return now - t >= LoginLimiter::kWindow; });
  return v.size();
}

int64_t SecondsLeft(const std::vector<MonoTime>& v, MonoTime now) {
  const auto left = LoginLimiter::kWindow - (now - v.front());
  return std::max<int64_t>(1, std::chrono::ceil<std::chrono::seconds>(left).count());
}

}  // namespace

int64_t LoginLimiter::RetryAfter(const std::string& name, const std::string& address) {
  const MonoTime now = clock_->Now();
  std::lock_guard lock(mu_);
  int64_t wait = 0;
  if (auto it = by_user_.find(name); it != by_user_.end()) {
    if (Prune(it->second, now) >= static_cast<size_t>(kMaxFailuresPerUser)) {
      wait = std::max(wait, SecondsLeft(it->second, now));
    }
  }
  if (auto it = by_address_.find(address); it != by_address_.end()) {
    if (Prune(it->second, now) >= static_cast<size_t>(kMaxFailuresPerAddress)) {
      wait = std::max(wait, SecondsLeft(it->second, now));
    }
  }
  return wait;
}

void LoginLimiter::Failed(const std::string& name, const std::string& address) {
  const MonoTime now = clock_->Now();
  std::lock_guard lock(mu_);
  // Bounded by what a minute holds: past 10,000 names or addresses, those whose failures all
  // left the window are forgotten (one address is stopped after 20 failures anyway).
  for (auto* m : {&by_user_, &by_address_}) {
    if (m->size() <= 10000) continue;
    for (auto it = m->begin(); it != m->end();) {
      it = Prune(it->second, now) == 0 ? m->erase(it) : std::next(it);
    }
  }
  by_user_[name].push_back(now);
  by_address_[address].push_back(now);
}

}  // namespace tandem::api
