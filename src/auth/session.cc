#include "auth/session.h"

#include <openssl/crypto.h>

#include <nlohmann/json.hpp>

#include "crypto/secret_box.h"
#include "crypto/token.h"

namespace tandem::auth {
namespace {

using Json = nlohmann::json;

const char* kHeader = R"({"alg":"HS256","typ":"JWT"})";

Status Invalid() { return Unauthenticated("the session token is not valid"); }

}  // namespace

bool LooksLikeJwt(std::string_view c) {
  size_t dots = 0;
  for (char ch : c) {
    if (ch == '.') {
      ++dots;
    } else if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
                 ch == '-' || ch == '_')) {
      return false;
    }
  }
  return dots == 2;
}

std::string SignSession(std::string_view key, const SessionClaims& c) {
  Json claims = {{"iss", "tandem"},    {"sub", c.user_id},    {"name", c.name},
                 {"iat", c.issued_at}, {"exp", c.expires_at}, {"gen", c.generation}};
  const std::string signing = Base64UrlEncode(kHeader) + "." + Base64UrlEncode(claims.dump());
  return signing + "." + Base64UrlEncode(HmacSha256(key, signing));
}

Result<SessionClaims> VerifySession(std::string_view key, std::string_view jwt, int64_t now) {
  const size_t a = jwt.find('.');
  const size_t b = a == std::string_view::npos ? a : jwt.find('.', a + 1);
  if (b == std::string_view::npos || jwt.find('.', b + 1) != std::string_view::npos) {
    return Invalid();
  }
  Result<std::string> header = Base64UrlDecode(jwt.substr(0, a));
  Result<std::string> payload = Base64UrlDecode(jwt.substr(a + 1, b - a - 1));
  Result<std::string> sig = Base64UrlDecode(jwt.substr(b + 1));
  if (!header.ok() || !payload.ok() || !sig.ok()) return Invalid();
  // The algorithm is ours to choose, not the token's: HS256 and nothing else.
  Json h = Json::parse(*header, nullptr, false);
  if (!h.is_object() || h.value("alg", "") != "HS256" || (h.contains("typ") && h["typ"] != "JWT") ||
      h.contains("crit")) {
    return Invalid();
  }
  const std::string mac = HmacSha256(key, jwt.substr(0, b));
  if (sig->size() != mac.size() || CRYPTO_memcmp(sig->data(), mac.data(), mac.size()) != 0) {
    return Invalid();
  }
  Json p = Json::parse(*payload, nullptr, false);
  if (!p.is_object() || p.value("iss", "") != "tandem" || !p.contains("sub") ||
      !p["sub"].is_string() || !p.contains("iat") || !p["iat"].is_number_integer() ||
      !p.contains("exp") || !p["exp"].is_number_integer() || !p.contains("gen") ||
      !p["gen"].is_number_integer()) {
    return Invalid();
  }
  SessionClaims c;
  c.user_id = p["sub"].get<std::string>();
  c.name = p.value("name", "");
  c.issued_at = p["iat"].get<int64_t>();
  c.expires_at = p["exp"].get<int64_t>();
  c.generation = p["gen"].get<int64_t>();
  if (c.expires_at <= now) return Unauthenticated("the session token has expired");
  if (c.issued_at > now + 60) return Invalid();
  return c;
}

}  // namespace tandem::auth
