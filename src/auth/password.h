// Users' passwords: argon2id hashes (libsodium's crypto_pwhash_str, its interactive limits: two
// passes over 64 MiB), so a copy of the database costs an attacker that much per guess.
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"

namespace tandem::auth {

// 12 to 1024 characters: InvalidArgument saying which rule it breaks (never echoing it).
Status CheckPasswordRules(std::string_view password);
// libsodium's encoded form ("$argon2id$v=19$m=65536,t=2,p=1$..."), salt included.
Result<std::string> HashPassword(std::string_view password);
// Whether `password` is the one `hash` was made from. A malformed hash is false.
bool VerifyPassword(std::string_view hash, std::string_view password);
// A hash of nothing anyone knows: what a login for an unknown user is checked against, so the
// answer takes as long as a wrong password does and does not tell which users exist.
const std::string& DecoyHash();

}  // namespace tandem::auth
