#include "base/text.h"

#include <gtest/gtest.h>

namespace tandem {
namespace {

TEST(TextTest, PercentEncodeKeepsOnlyUnreservedCharacters) {
  EXPECT_EQ(PercentEncode("abc-_.~XYZ09"), "abc-_.~XYZ09");
  EXPECT_EQ(PercentEncode("manual__2024-01-01T00:00:00+00:00"),
            "manual__2024-01-01T00%3A00%3A00%2B00%3A00");
  EXPECT_EQ(PercentEncode("a/b c%"), "a%2Fb%20c%25");
  EXPECT_EQ(PercentEncode("\xc3\xa9"), "%C3%A9");
  EXPECT_EQ(PercentEncode(""), "");
}

TEST(TextTest, TrimSpace) {
  EXPECT_EQ(TrimSpace("  a b\t\r\n"), "a b");
  EXPECT_EQ(TrimSpace(" \n "), "");
  EXPECT_EQ(TrimSpace("x"), "x");
}

TEST(TextTest, AsciiUpper) { EXPECT_EQ(AsciiUpper("my_conn-1"), "MY_CONN-1"); }

}  // namespace
}  // namespace tandem
