#include "api/worker_auth.h"

#include "api/auth.h"
#include "auth/api_token.h"

namespace tandem::api {
namespace {

constexpr std::string_view kHowTo =
    "Authorization: Bearer ...; `tandem worker-credential create` makes one";

}  // namespace

WorkerAuthenticator::WorkerAuthenticator(store::Identities* identities, const Clock* clock,
                                         std::chrono::milliseconds cache_ttl)
    : identities_(identities),
      clock_(clock),
      ttl_(cache_ttl),
      local_(auth::FormatToken(auth::NewToken())),
      local_hash_(auth::SecretHash(local_)) {}

Result<WorkerGrant> WorkerAuthenticator::Authenticate(std::string_view authorization) {
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.empty()) {
    return Unauthenticated(std::string("the Execution API needs a worker credential (") +
                           std::string(kHowTo) + ")");
  }
  if (authorization.size() > kMaxAuthorizationBytes ||
      authorization.substr(0, kBearer.size()) != kBearer) {
    return Unauthenticated(std::string("the Authorization header is not a bearer credential (") +
                           std::string(kHowTo) + ")");
  }
  const std::string_view given = authorization.substr(kBearer.size());
  const std::string key = auth::SecretHash(given);
  if (auth::SameHash(key, local_hash_)) return WorkerGrant{"", "the region's own workers", {}};
  const MonoTime now = clock_->Now();
  {
    std::lock_guard lock(mu_);
    auto it = cache_.find(key);
    if (it != cache_.end() && now - it->second.at < ttl_) return it->second.grant;
  }
  Result<WorkerGrant> grant = Unauthenticated("the worker credential is not valid");
  std::string id;
  if (Result<auth::TokenParts> parts = auth::ParseToken(given); parts.ok()) {
    id = parts->id;
    Result<store::WorkerCredential> w = identities_->AuthenticateWorker(*parts);
    if (w.ok()) {
      grant = WorkerGrant{w->id, "worker credential " + w->name, w->deployment_id};
    } else if (w.status().code() == Code::kUnauthenticated) {
      grant = w.status();
    } else {
      return w.status();  // the database: not remembered
    }
  }
  std::lock_guard lock(mu_);
  if (cache_.size() > 10000) cache_.clear();
  cache_.insert_or_assign(key, Entry{now, id, grant});
  return grant;
}

void WorkerAuthenticator::Forget(const std::string& id) {
  std::lock_guard lock(mu_);
  std::erase_if(cache_, [&](const auto& e) { return e.second.id == id; });
}

}  // namespace tandem::api
