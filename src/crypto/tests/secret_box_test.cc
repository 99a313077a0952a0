#include "crypto/secret_box.h"

#include <gtest/gtest.h>

#include <vector>

namespace tandem {
namespace {

TEST(SecretBoxTest, SealsAndOpens) {
  auto box = SecretBox::FromBase64(NewSecretKeyBase64());
  ASSERT_TRUE(box.ok());
  std::string sealed = box->Seal("hunter2", "conn/a/password");
  EXPECT_EQ(sealed.find("hunter2"), std::string::npos);
  EXPECT_EQ(*box->Open(sealed, "conn/a/password"), "hunter2");
  // Random nonces: the same plaintext seals differently.
  EXPECT_NE(sealed, box->Seal("hunter2", "conn/a/password"));
}

TEST(SecretBoxTest, WrongKeyOrPlaceOrTamperingFails) {
  auto a = SecretBox::FromBase64(NewSecretKeyBase64());
  auto b = SecretBox::FromBase64(NewSecretKeyBase64());
  std::string sealed = a->Seal("x", "here");
  EXPECT_EQ(b->Open(sealed, "here").status().code(), Code::kFailedPrecondition);
  EXPECT_FALSE(a->Open(sealed, "elsewhere").ok());
  sealed[sealed.size() / 2] ^= 1;
  EXPECT_FALSE(a->Open(sealed, "here").ok());
  EXPECT_FALSE(a->Open("short", "here").ok());
}

TEST(SecretBoxTest, RejectsBadKeys) {
  EXPECT_FALSE(SecretBox::FromBase64("not base64!").ok());
  EXPECT_FALSE(SecretBox::FromBase64(Base64Encode("too short")).ok());
  EXPECT_FALSE(SecretBox::FromBase64("").ok());
  EXPECT_TRUE(SecretBox::FromBase64("  " + NewSecretKeyBase64() + "\n").ok());
}

// RFC 4648, section 10: a round trip alone would pass an encoding that is wrong both ways
// (another alphabet, no padding).
TEST(Base64Test, MatchesTheRfc4648TestVectors) {
  const std::vector<std::pair<std::string, std::string>> vectors = {{"", ""},
                                                                    {"f", "Zg=="},
                                                                    {"fo", "Zm8="},
                                                                    {"foo", "Zm9v"},
                                                                    {"foob", "Zm9vYg=="},
                                                                    {"fooba", "Zm9vYmE="},
                                                                    {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(Base64Encode(plain), encoded) << plain;
    auto decoded = Base64Decode(encoded);
    ASSERT_TRUE(decoded.ok()) << encoded;
    EXPECT_EQ(*decoded, plain) << encoded;
  }
  // The standard alphabet's last two characters, not the URL-safe ones.
  EXPECT_EQ(Base64Encode(std::string("\xfb\xff", 2)), "+/8=");
}

TEST(Base64Test, RoundTrips) {
  for (const std::string& s :
       std::vector<std::string>{"", "a", "ab", "abc", "abcd", std::string("\0\xff", 2)}) {
    EXPECT_EQ(*Base64Decode(Base64Encode(s)), s);
  }
}

}  // namespace
}  // namespace tandem
