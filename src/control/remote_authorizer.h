// The control plane's check of every request: it holds no principals of its own, so it asks a
// region who the bearer credential is (`GET /api/v1/whoami` with the caller's credential) and
// decides with the same policy (auth/policy.h) the regions use.
//
// Principals live in the metadata, which both regions hold, so any region that answers will
// do: the one that answered last is asked first, then the other. A failover needs one region
// alive, and that is all this needs too. Answers are remembered for `cache_ttl` (2 s), so a
// revoked token stops working here within that plus the replication lag.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "api/http.h"
#include "base/clock.h"
#include "tls/certificates.h"

namespace tandem::control {

class RemoteAuthorizer {
 public:
  RemoteAuthorizer(std::vector<std::string> region_urls, const Clock* clock,
                   std::chrono::milliseconds cache_ttl = std::chrono::seconds(2),
                   tls::Trust trust = {});

  // The api::Authorizer: sets req.principal once the credential is known.
  Status Check(api::Request& req, auth::Need need);

 private:
  Result<std::shared_ptr<const auth::Principal>> Ask(const std::string& credential);

  const std::vector<std::string> urls_;
  const tls::Trust trust_;
  const Clock* clock_;
  const std::chrono::milliseconds ttl_;
  std::mutex mu_;
  size_t first_ = 0;  // the region that answered last
  struct Entry {
    MonoTime at;
    Result<std::shared_ptr<const auth::Principal>> principal;
  };
  std::map<std::string, Entry> cache_;  // by the credential's SHA-256
};

// A principal as /api/v1/whoami tells it.
Result<auth::Principal> PrincipalFromJson(const std::string& body);

}  // namespace tandem::control
