// Bearer tokens for the registries: the Docker Registry v2 token scheme, which the registry
// process checks (distribution's `auth.token`) and every registry client speaks.
//
// A registry with token auth answers a request without a valid token 401 with
//
//   WWW-Authenticate: Bearer realm="https://<region>/api/v1/registry/token",
//                     service="tandem-registry",scope="repository:<name>:pull,push"
//
// and accepts a JWT whose claims grant the request's scope:
//
//   header {"alg": "ES256" | "RS256", "typ": "JWT", "x5c": [<the signer's certificate, DER>]}
//   claims {"iss": "tandem", "aud": "tandem-registry", "sub", "iat", "nbf", "exp", "jti",
//           "access": [{"type": "repository", "name", "actions": ["pull", "push"]}]}
//
// The registry trusts a token whose x5c certificate chains to the pair's CA, so a region signs
// with its own TLS key and certificate, and each registry of the pair accepts the tokens of
// either region: the region mints its own tokens for pulling and replicating images, and hands
// principals tokens at its realm, GET /api/v1/registry/token (docs/security.md, "Registries").
//
// OpenSSL stays in registry_token.cc.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace tandem::images {

inline constexpr const char* kRegistryTokenIssuer = "tandem";
inline constexpr const char* kRegistryService = "tandem-registry";
// How long a token lasts: what Docker Hub gives.
inline constexpr int64_t kRegistryTokenSeconds = 300;

// One grant: `actions` ("pull", "push") on the repository `name`.
struct RegistryAccess {
  std::string name;
  std::vector<std::string> actions;
  bool operator==(const RegistryAccess&) const = default;
};

// Parses a scope parameter: "repository:<name>:<action>[,<action>...]". Other resource types
// (e.g. "registry:catalog:*") and unknown actions are InvalidArgument, as are bad names.
Result<RegistryAccess> ParseRegistryScope(std::string_view scope);
// The scope a request on `repository` needs: "repository:<repository>:pull" or ":pull,push".
std::string RegistryScope(const std::string& repository, bool push);

class RegistryTokenSigner {
 public:
  // From the PEM files of a server's TLS certificate (the first in the file) and its key: ES256
  // for a P-256 key, RS256 for RSA. InvalidArgument for another key, or a key that is not the
  // certificate's.
  static Result<std::unique_ptr<RegistryTokenSigner>> FromFiles(const std::string& cert_file,
                                                                const std::string& key_file);
  ~RegistryTokenSigner();
  RegistryTokenSigner(const RegistryTokenSigner&) = delete;
  RegistryTokenSigner& operator=(const RegistryTokenSigner&) = delete;

  // A token for `subject` granting `access` from `now` (Unix seconds) for kRegistryTokenSeconds.
  std::string Sign(const std::string& subject, const std::vector<RegistryAccess>& access,
                   int64_t now) const;

 private:
  struct Impl;
  explicit RegistryTokenSigner(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::images
