#include "auth/password.h"

#include <gtest/gtest.h>

namespace tandem::auth {
namespace {

TEST(PasswordTest, HashesVerifyTheirPasswordOnly) {
  Result<std::string> h = HashPassword("correct horse battery staple");
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_EQ(h->rfind("$argon2id$", 0), 0u) << *h;
  EXPECT_TRUE(VerifyPassword(*h, "correct horse battery staple"));
  EXPECT_FALSE(VerifyPassword(*h, "correct horse battery stapl"));
  EXPECT_FALSE(VerifyPassword(*h, ""));
  // Salted: the same password hashes differently each time.
  EXPECT_NE(*HashPassword("correct horse battery staple"), *h);
  EXPECT_FALSE(VerifyPassword("not a hash", "correct horse battery staple"));
  EXPECT_FALSE(VerifyPassword("", ""));
  EXPECT_FALSE(VerifyPassword(DecoyHash(), ""));
}

TEST(PasswordTest, RulesRefuseShortAndHugePasswords) {
  Status s = CheckPasswordRules("short");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "a password has at least 12 characters");
  EXPECT_EQ(s.message().find("short"), std::string::npos);
  EXPECT_FALSE(CheckPasswordRules(std::string(1025, 'x')).ok());
  EXPECT_TRUE(CheckPasswordRules(std::string(12, 'x')).ok());
  EXPECT_FALSE(HashPassword("short").ok());
}

}  // namespace
}  // namespace tandem::auth
