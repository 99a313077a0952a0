// The region's check of every request (api::Authorizer): who sent it, from the bearer
// credential, and whether its roles meet what the route needs where the request acts.
//
// Credentials are API tokens (auth/api_token.h), looked up in the region's own metadata — the
// standby's replica included — so a region checks requests with or without the control plane,
// before and after a failover. What a credential turned into is remembered for up to
// `cache_ttl` (2 s): a revoked token stops working within that plus the replication lag.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "api/http.h"
#include "base/clock.h"
#include "store/identities.h"

namespace tandem::api {

// An Authorization header longer than this is refused unread.
inline constexpr size_t kMaxAuthorizationBytes = 4096;

// The credential of an "Authorization: Bearer <credential>" header, or Unauthenticated saying
// what is wrong (missing, not Bearer, too long), never echoing it.
Result<std::string> BearerCredential(const Request& req);

class RegionAuthorizer {
 public:
  RegionAuthorizer(store::Identities* identities, const Clock* clock,
                   std::chrono::milliseconds cache_ttl = std::chrono::seconds(2))
      : identities_(identities), clock_(clock), ttl_(cache_ttl) {}

  Result<std::shared_ptr<const auth::Principal>> Check(const Request& req, auth::Need need);
  // The principal a credential stands for (cached), or why not.
  Result<std::shared_ptr<const auth::Principal>> Authenticate(const std::string& credential);

 private:
  // Where the request acts, for the Needs that name a deployment or a workspace.
  Result<auth::Target> TargetOf(const Request& req, auth::Need need);

  store::Identities* identities_;
  const Clock* clock_;
  const std::chrono::milliseconds ttl_;
  struct Entry {
    MonoTime at;
    Result<std::shared_ptr<const auth::Principal>> principal;
  };
  std::mutex mu_;
  std::map<std::string, Entry> cache_;  // by the credential's SHA-256
};

}  // namespace tandem::api
