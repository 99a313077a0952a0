// API tokens: the credential of CI/CD and scripts, and the one `tandem up` hands the CLI.
//
// A token is "tandem_" + its id (32 hex digits) + "_" + its secret (64 hex digits, 256 random
// bits). It is shown once, when it is made; the database keeps the id and SHA-256 of the secret
// only, so a copy of the database does not hold usable tokens. A secret this long needs no slow
// hash: guessing it is 2^256 work whatever the hash costs. The id finds the row; the hash is
// compared in constant time.
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"

namespace tandem::auth {

struct TokenParts {
  std::string id;      // 32 lower-case hex digits
  std::string secret;  // 64 lower-case hex digits
};

// A new token's parts, from the kernel's randomness.
TokenParts NewToken();
// "tandem_<id>_<secret>".
std::string FormatToken(const TokenParts& t);
// Unauthenticated when `text` is not a token's shape (it says so, never echoing the text).
Result<TokenParts> ParseToken(std::string_view text);
// What the database keeps of the secret: lower-case hex SHA-256.
std::string SecretHash(std::string_view secret);
// Compares two hashes in constant time.
bool SameHash(std::string_view a, std::string_view b);

}  // namespace tandem::auth
