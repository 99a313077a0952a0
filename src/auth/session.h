// Session tokens: what a user gets for a username and password at POST /auth/token, as Airflow
// 3 hands out — a JSON Web Token, sent back as "Authorization: Bearer".
//
// HS256 over the claims {"iss": "tandem", "sub": user id, "name", "iat", "exp", "gen"} ("gen": the
// user's session generation, which a password change or disabling moves on), keyed by a key
// of this purpose alone (derived from the pair's secret key), which both regions and so either
// side of a failover hold. Verification takes HS256 only — "alg": "none" and every other
// algorithm are refused — and a token says nothing about roles: those are read from the
// metadata at each check, so a user disabled, or whose password changed, loses every session
// at once.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace tandem::auth {

struct SessionClaims {
  std::string user_id;
  std::string name;
  int64_t issued_at = 0;   // Unix seconds
  int64_t expires_at = 0;  // Unix seconds
  int64_t generation = 0;  // the user's session generation when issued ("gen")
};

// REQUIRES: key.size() >= 32.
std::string SignSession(std::string_view key, const SessionClaims& c);
// Unauthenticated for anything but an HS256 token signed with `key`, issued by tandem, not
// expired at `now` and not issued more than a minute after it.
Result<SessionClaims> VerifySession(std::string_view key, std::string_view jwt, int64_t now);

// Whether `credential` has a JWT's shape (three base64url parts): how a bearer credential is
// told from an API token.
bool LooksLikeJwt(std::string_view credential);

}  // namespace tandem::auth
