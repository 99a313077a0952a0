#include "crypto/token.h"

#include <gtest/gtest.h>

#include <vector>

namespace tandem {
namespace {

TaskClaims Claims() {
  return {"6f1c2c1e-0000-4000-8000-000000000001", 2, "dep", "etl", "manual__2024", "load", 1000};
}

TEST(TokenTest, RoundTripsItsClaims) {
  TokenSigner s(std::string(32, 'k'));
  Result<TaskClaims> c = s.Verify(s.Sign(Claims()), 999);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->ti_id, Claims().ti_id);
  EXPECT_EQ(c->try_number, 2);
  EXPECT_EQ(c->deployment_id, "dep");
  EXPECT_EQ(c->dag_id, "etl");
  EXPECT_EQ(c->run_id, "manual__2024");
  EXPECT_EQ(c->task_id, "load");
  EXPECT_EQ(c->expires_at, 1000);
}

TEST(TokenTest, ExpiredIsRefused) {
  TokenSigner s(std::string(32, 'k'));
  Result<TaskClaims> c = s.Verify(s.Sign(Claims()), 1000);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Code::kUnauthenticated);
  EXPECT_NE(c.status().message().find("expired"), std::string::npos);
}

TEST(TokenTest, AnotherKeyOrATamperedTokenIsRefused) {
  TokenSigner a(std::string(32, 'a')), b(std::string(32, 'b'));
  std::string t = a.Sign(Claims());
  EXPECT_EQ(b.Verify(t, 0).status().code(), Code::kUnauthenticated);
  // Swap in the claims of another task instance, keep the signature.
  TaskClaims other = Claims();
  other.task_id = "extract";
  std::string forged = a.Sign(other).substr(0, a.Sign(other).find('.')) + t.substr(t.find('.'));
  EXPECT_EQ(a.Verify(forged, 0).status().code(), Code::kUnauthenticated);
  for (const std::string& junk :
       std::vector<std::string>{"", ".", "abc", "abc.def", t + "x", "." + t}) {
    EXPECT_EQ(a.Verify(junk, 0).status().code(), Code::kUnauthenticated) << junk;
  }
}

TEST(TokenTest, Sha256HexMatchesAKnownVector) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace tandem
