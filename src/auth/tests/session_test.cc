#include "auth/session.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "crypto/secret_box.h"
#include "crypto/token.h"

namespace tandem::auth {
namespace {

const std::string kKey(32, 'k');
constexpr int64_t kNow = 1'800'000'000;

SessionClaims Alice() { return {"u-1", "alice", kNow - 10, kNow + 3600}; }

std::string B64Url(std::string_view s) {
  std::string b = Base64Encode(s);
  while (!b.empty() && b.back() == '=') b.pop_back();
  for (char& c : b) c = c == '+' ? '-' : c == '/' ? '_' : c;
  return b;
}

// A token with `header` and `claims` signed HS256 with `key`.
std::string Forge(const std::string& header, const nlohmann::json& claims, const std::string& key) {
  std::string signing = B64Url(header) + "." + B64Url(claims.dump());
  return signing + "." + B64Url(HmacSha256(key, signing));
}

nlohmann::json Claims() {
  return {{"iss", "tandem"},  {"sub", "u-1"},       {"name", "alice"},
          {"iat", kNow - 10}, {"exp", kNow + 3600}, {"gen", 0}};
}

TEST(SessionTest, SignsAndVerifies) {
  std::string jwt = SignSession(kKey, Alice());
  EXPECT_TRUE(LooksLikeJwt(jwt));
  Result<SessionClaims> c = VerifySession(kKey, jwt, kNow);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->user_id, "u-1");
  EXPECT_EQ(c->name, "alice");
  EXPECT_EQ(c->expires_at, kNow + 3600);
  // Our forge helper makes the same kind of token (so the refusals below test one thing each).
  EXPECT_TRUE(
      VerifySession(kKey, Forge(R"({"alg":"HS256","typ":"JWT"})", Claims(), kKey), kNow).ok());
}

TEST(SessionTest, RefusesForgedAndAlteredTokens) {
  const std::string good = SignSession(kKey, Alice());
  // Another key.
  EXPECT_FALSE(VerifySession(std::string(32, 'x'), good, kNow).ok());
  // "alg": "none", with and without a signature.
  nlohmann::json c = Claims();
  std::string none = B64Url(R"({"alg":"none","typ":"JWT"})") + "." + B64Url(c.dump()) + ".";
  EXPECT_FALSE(VerifySession(kKey, none, kNow).ok());
  EXPECT_FALSE(VerifySession(kKey, Forge(R"({"alg":"none"})", c, kKey), kNow).ok());
  EXPECT_FALSE(VerifySession(kKey, Forge(R"({"alg":"HS512"})", c, kKey), kNow).ok());
  EXPECT_FALSE(VerifySession(kKey, Forge(R"({"alg":"RS256"})", c, kKey), kNow).ok());
  // Changed claims under the old signature: another user.
  const size_t a = good.find('.'), b = good.rfind('.');
  nlohmann::json bob = Claims();
  bob["sub"] = "u-2";
  std::string swapped = good.substr(0, a) + "." + B64Url(bob.dump()) + good.substr(b);
  Result<SessionClaims> r = VerifySession(kKey, swapped, kNow);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnauthenticated);
  // Another issuer, missing claims, malformed shapes.
  nlohmann::json other = Claims();
  other["iss"] = "airflow";
  EXPECT_FALSE(VerifySession(kKey, Forge(R"({"alg":"HS256"})", other, kKey), kNow).ok());
  nlohmann::json no_exp = Claims();
  no_exp.erase("exp");
  EXPECT_FALSE(VerifySession(kKey, Forge(R"({"alg":"HS256"})", no_exp, kKey), kNow).ok());
  for (const std::string& bad : {std::string(), std::string("a.b"), std::string("a.b.c.d"),
                                 std::string("!!.??.**"), good + "x"}) {
    EXPECT_FALSE(VerifySession(kKey, bad, kNow).ok()) << bad;
  }
}

TEST(SessionTest, ExpiresAndRefusesTokensFromTheFuture) {
  std::string jwt = SignSession(kKey, Alice());
  Result<SessionClaims> late = VerifySession(kKey, jwt, kNow + 3600);
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.status().message(), "the session token has expired");
  SessionClaims future = Alice();
  future.issued_at = kNow + 120;
  EXPECT_FALSE(VerifySession(kKey, SignSession(kKey, future), kNow).ok());
}

TEST(SessionTest, TellsJwtsFromApiTokens) {
  EXPECT_FALSE(LooksLikeJwt("tandem_0123_4567"));
  EXPECT_FALSE(LooksLikeJwt("a.b"));
  EXPECT_TRUE(LooksLikeJwt("a.b.c"));
}

}  // namespace
}  // namespace tandem::auth
