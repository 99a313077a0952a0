// The region's check of every request (api::Authorizer): who sent it, from the bearer
// credential, and whether its roles meet what the route needs where the request acts.
//
// Credentials are API tokens (auth/api_token.h) and users' session tokens (auth/session.h),
// checked against the region's own metadata — the standby's replica included — so a region
// checks requests with or without the control plane, before and after a failover. What a
// credential turned into is remembered for up to `cache_ttl` (2 s): a revoked token, a disabled
// user or a changed password stops working within that plus the replication lag.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "api/http.h"
#include "base/clock.h"
#include "store/identities.h"

namespace tandem::api {

// An Authorization header longer than this is refused unread.
inline constexpr size_t kMaxAuthorizationBytes = 4096;

// The credential of an "Authorization: Bearer <credential>" header, or the password of an
// "Authorization: Basic <base64 of name:password>" one, which is what `docker login` (to the
// registries' token realm) and `curl -u` send: any name, an API token or a session token as the
// password. A user's own password is taken by POST /auth/token only, which limits guesses.
// Unauthenticated saying what is wrong (missing, neither scheme, too long), never echoing it.
Result<std::string> BearerCredential(const Request& req);

class RegionAuthorizer {
 public:
  // `session_key` checks users' session tokens (the key POST /auth/token signs them with).
  RegionAuthorizer(store::Identities* identities, std::string session_key, const Clock* clock,
                   std::chrono::milliseconds cache_ttl = std::chrono::seconds(2))
      : identities_(identities),
        session_key_(std::move(session_key)),
        clock_(clock),
        ttl_(cache_ttl) {}

  // The api::Authorizer: sets req.principal once the credential is known.
  Status Check(Request& req, auth::Need need);
  // The principal a credential stands for (cached), or why not.
  Result<std::shared_ptr<const auth::Principal>> Authenticate(const std::string& credential);

 private:
  // Where the request acts, for the Needs that name a deployment or a workspace.
  Result<auth::Target> TargetOf(const Request& req, auth::Need need);

  store::Identities* identities_;
  const std::string session_key_;
  const Clock* clock_;
  const std::chrono::milliseconds ttl_;
  struct Entry {
    MonoTime at;
    Result<std::shared_ptr<const auth::Principal>> principal;
  };
  std::mutex mu_;
  std::map<std::string, Entry> cache_;  // by the credential's SHA-256
};

// Failed logins, per user name and per client address. After kMaxFailuresPerUser failures for a
// name, or kMaxFailuresPerAddress from an address, within kWindow, further attempts are refused
// (429) until the oldest of them leaves the window — so a guess storm gets 5 guesses a minute per
// user, and one address 20, whatever the passwords. Kept in memory: each region counts its own.
class LoginLimiter {
 public:
  static constexpr int kMaxFailuresPerUser = 5;
  static constexpr int kMaxFailuresPerAddress = 20;
  static constexpr std::chrono::seconds kWindow{60};

  explicit LoginLimiter(const Clock* clock) : clock_(clock) {}
  // 0 when a login for `name` from `address` may be tried now, else the seconds to wait.
  int64_t RetryAfter(const std::string& name, const std::string& address);
  void Failed(const std::string& name, const std::string& address);

 private:
  const Clock* clock_;
  std::mutex mu_;
  std::map<std::string, std::vector<MonoTime>> by_user_, by_address_;
};

}  // namespace tandem::api
