#include "auth/api_token.h"

#include <openssl/crypto.h>

#include "base/random.h"
#include "crypto/token.h"

namespace tandem::auth {
namespace {

constexpr std::string_view kPrefix = "tandem_";
constexpr size_t kIdHex = 32;
constexpr size_t kSecretHex = 64;

bool IsLowerHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

TokenParts NewToken() {
  return {HexEncode(RandomBytes(kIdHex / 2)), HexEncode(RandomBytes(kSecretHex / 2))};
}

std::string FormatToken(const TokenParts& t) {
  return std::string(kPrefix) + t.id + "_" + t.secret;
}

Result<TokenParts> ParseToken(std::string_view text) {
  const size_t want = kPrefix.size() + kIdHex + 1 + kSecretHex;
  if (text.size() != want || text.substr(0, kPrefix.size()) != kPrefix ||
      text[kPrefix.size() + kIdHex] != '_') {
    return Unauthenticated("the credential is not a tandem token or a valid JWT");
  }
  TokenParts t{std::string(text.substr(kPrefix.size(), kIdHex)),
               std::string(text.substr(kPrefix.size() + kIdHex + 1))};
  if (!IsLowerHex(t.id) || !IsLowerHex(t.secret)) {
    return Unauthenticated("the credential is not a tandem token or a valid JWT");
  }
  return t;
}

std::string SecretHash(std::string_view secret) { return Sha256Hex(secret); }

bool SameHash(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace tandem::auth
