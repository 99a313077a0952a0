#include "crypto/keyring.h"

#include <gtest/gtest.h>

namespace tandem {
namespace {

SecretBox NewBox() { return *SecretBox::FromBase64(NewSecretKeyBase64()); }

TEST(KeyringTest, ValuesNameTheirKeyAndOpenUnderIt) {
  Keyring ring(NewBox());
  ring.Add(KeyId(1), NewBox());
  ring.Add(KeyId(258), NewBox());
  auto a = ring.Seal(KeyId(1), "hunter2", "var/d/pw");
  auto b = ring.Seal(KeyId(258), "hunter2", "var/d/pw");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->substr(0, Keyring::kHeaderSize), std::string("\x02\0\0\0\x01", 5));
  EXPECT_EQ(b->substr(0, Keyring::kHeaderSize), std::string("\x02\0\0\x01\x02", 5));
  EXPECT_EQ(**Keyring::KeyOf(*b), KeyId(258));
  EXPECT_EQ(*ring.Open(*a, "var/d/pw"), "hunter2");
  EXPECT_EQ(*ring.Open(*b, "var/d/pw"), "hunter2");
  EXPECT_EQ(a->find("hunter2"), std::string::npos);
  EXPECT_FALSE(ring.Open(*a, "var/d/other").ok());
}

TEST(KeyringTest, AValueCannotClaimAnotherKey) {
  // Both keys the same bytes: only the header, bound in the associated data, tells them apart.
  SecretBox same = NewBox();
  Keyring ring(NewBox());
  ring.Add(KeyId(1), same);
  ring.Add(KeyId(2), same);
  std::string sealed = *ring.Seal(KeyId(1), "x", "here");
  sealed[4] = 0x02;
  EXPECT_EQ(ring.Open(sealed, "here").status().code(), Code::kFailedPrecondition);
}

TEST(KeyringTest, OpensValuesSealedBeforeTheKeyringUnderThePairKey) {
  SecretBox pair = NewBox();
  Keyring ring(pair);
  std::string old = pair.Seal("legacy", "env/d/K");
  EXPECT_EQ(*Keyring::KeyOf(old), std::nullopt);
  EXPECT_EQ(*ring.Open(old, "env/d/K"), "legacy");
}

TEST(KeyringTest, AnUnknownOrDroppedKeyIsNotFound) {
  Keyring ring(NewBox());
  EXPECT_EQ(ring.Seal(KeyId(7), "x", "a").status().code(), Code::kNotFound);
  ring.Add(KeyId(7), NewBox());
  std::string sealed = *ring.Seal(KeyId(7), "x", "a");
  ring.Remove(KeyId(7));
  EXPECT_FALSE(ring.Has(KeyId(7)));
  EXPECT_EQ(ring.Open(sealed, "a").status().code(), Code::kNotFound);
  EXPECT_FALSE(Keyring::KeyOf("\x03junk").ok());
  EXPECT_FALSE(Keyring::KeyOf("").ok());
  EXPECT_FALSE(ring.Open(std::string("\x02\0\0", 3), "a").ok());
}

}  // namespace
}  // namespace tandem
