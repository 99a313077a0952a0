// Who a worker is: the Execution API's check of the credential a worker presents
// ("Authorization: Bearer <credential>").
//
// Two kinds of credential pass:
//   - the credentials made through the API (store::Identities' worker credentials), each for
//     one deployment — its workers claim only that deployment's tasks — or for the platform,
//     a pool that claims every deployment's. They are kept as hashes in the metadata, so both
//     regions know them, and are revocable;
//   - the region's own: made at random when the region starts, held in memory only and handed
//     to the workers the region starts itself. It dies with the region process; nothing derives
//     it and no other process accepts it.
// What a credential turned into is remembered for up to `cache_ttl` (1 s). A revocation made in
// this region calls Forget, so it takes effect at the worker's next request; one made elsewhere
// within the cache's life plus the replication lag.
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "base/clock.h"
#include "base/status.h"
#include "store/identities.h"

namespace tandem::api {

struct WorkerGrant {
  std::string credential_id;  // "" for the region's own workers
  std::string name;           // for logs and errors: "worker credential etl-pool"
  std::optional<std::string> deployment_id;  // nullopt: every deployment
};

class WorkerAuthenticator {
 public:
  WorkerAuthenticator(store::Identities* identities, const Clock* clock,
                      std::chrono::milliseconds cache_ttl = std::chrono::seconds(1));

  // The credential of the region's own workers.
  const std::string& local_credential() const { return local_; }

  // Unauthenticated saying why (missing, not Bearer, unknown, revoked, expired) — never echoing
  // the credential.
  Result<WorkerGrant> Authenticate(std::string_view authorization);
  // Drops what is remembered of credential `id`: its next use is checked against the metadata.
  void Forget(const std::string& id);

 private:
  store::Identities* const identities_;
  const Clock* const clock_;
  const std::chrono::milliseconds ttl_;
  const std::string local_;
  const std::string local_hash_;
  struct Entry {
    MonoTime at;
    std::string id;
    Result<WorkerGrant> grant;
  };
  std::mutex mu_;
  std::map<std::string, Entry> cache_;  // by the credential's SHA-256
};

}  // namespace tandem::api
