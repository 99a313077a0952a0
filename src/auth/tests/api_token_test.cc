#include "auth/api_token.h"

#include <gtest/gtest.h>

namespace tandem::auth {
namespace {

TEST(ApiTokenTest, FormatsAndParsesBack) {
  TokenParts t = NewToken();
  EXPECT_EQ(t.id.size(), 32u);
  EXPECT_EQ(t.secret.size(), 64u);
  std::string text = FormatToken(t);
  EXPECT_EQ(text.rfind("tandem_", 0), 0u);
  Result<TokenParts> back = ParseToken(text);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->id, t.id);
  EXPECT_EQ(back->secret, t.secret);
  EXPECT_NE(NewToken().secret, t.secret);
}

TEST(ApiTokenTest, RefusesWhatIsNotAToken) {
  TokenParts t = NewToken();
  std::string good = FormatToken(t);
  for (const std::string& bad :
       {std::string(), std::string("tandem_"), good.substr(1), good + "0",
        "tandem_" + t.id + "-" + t.secret, "tandem_" + t.id + "_" + t.secret.substr(1) + "G",
        "TANDEM_" + t.id + "_" + t.secret}) {
    Result<TokenParts> r = ParseToken(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), Code::kUnauthenticated);
    EXPECT_EQ(r.status().message().find(bad.empty() ? "\x01" : bad), std::string::npos)
        << "the error echoes the credential";
  }
}

TEST(ApiTokenTest, HashesAreSha256AndCompared) {
  // SHA-256("abc"), FIPS 180-2's example.
  EXPECT_EQ(SecretHash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_TRUE(SameHash(SecretHash("x"), SecretHash("x")));
  EXPECT_FALSE(SameHash(SecretHash("x"), SecretHash("y")));
  EXPECT_FALSE(SameHash("ab", "abc"));
}

}  // namespace
}  // namespace tandem::auth
