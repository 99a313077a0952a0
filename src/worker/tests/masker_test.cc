#include "worker/masker.h"

#include <gtest/gtest.h>

namespace tandem::worker {
namespace {

TEST(MaskerTest, MasksEveryOccurrenceAndLeavesTheRest) {
  Masker m({"hunter22", "s3cr3t-token"});
  EXPECT_EQ(m.Feed("login with hunter22 and hunter22\n"), "login with *** and ***\n");
  EXPECT_EQ(m.Feed("Authorization: s3cr3t-token!\n"), "Authorization: ***!\n");
  EXPECT_EQ(m.Feed("nothing here\n"), "nothing here\n");
  EXPECT_EQ(m.Finish(), "");
}

TEST(MaskerTest, ASecretSplitBetweenReadsIsMaskedAndOnlyItsStartIsKeptBack) {
  Masker m({"hunter22"});
  EXPECT_EQ(m.Feed("password=hun"), "password=");  // "hun" may be the start of it
  EXPECT_EQ(m.Feed("ter"), "");
  EXPECT_EQ(m.Feed("22 ok\n"), "*** ok\n");
  // A start that turns out not to be one is let go as soon as that is known.
  EXPECT_EQ(m.Feed("hunt"), "");
  EXPECT_EQ(m.Feed("ing\n"), "hunting\n");
  // And at the end, whatever was kept back goes out.
  EXPECT_EQ(m.Feed("last: hunter2"), "last: ");
  EXPECT_EQ(m.Finish(), "hunter2");
}

TEST(MaskerTest, TheLongestSecretWinsAndOverlapsAreAllHidden) {
  Masker m({"abcde", "abcdefgh"});
  EXPECT_EQ(m.Mask("xabcdefghx abcdex"), "x***x ***x");
}

TEST(MaskerTest, ShortValuesAndNoSecretsChangeNothing) {
  Masker none({});
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(none.Feed("anything at all"), "anything at all");
  Masker shorts({"1", "yes", "abcd"});
  EXPECT_TRUE(shorts.empty());
  EXPECT_EQ(shorts.Feed("1 yes abcd"), "1 yes abcd");
}

TEST(MaskerTest, FedByteByByteTheOutputIsTheSameAsAtOnce) {
  const std::string text = "a=pa55word b=pa55 c=pa55wordpa55word\nend pa55w";
  Masker whole({"pa55word"});
  std::string at_once = whole.Feed(text);
  at_once += whole.Finish();
  Masker bytes({"pa55word"});
  std::string fed;
  for (char c : text) fed += bytes.Feed(std::string_view(&c, 1));
  fed += bytes.Finish();
  EXPECT_EQ(fed, at_once);
  EXPECT_EQ(at_once, "a=*** b=pa55 c=******\nend pa55w");
}

}  // namespace
}  // namespace tandem::worker
