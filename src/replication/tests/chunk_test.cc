#include "replication/chunk.h"

#include <gtest/gtest.h>

#include <string>

namespace tandem::replication {
namespace {

TEST(Crc32cTest, MatchesPublishedCheckValues) {
  // The CRC-32C check value (RFC 3720, B.4) and its all-zero and all-one vectors.
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(std::string(32, '\xff')), 0x62A8AB43u);
  EXPECT_EQ(Crc32c(""), 0u);
  EXPECT_EQ(Crc32cPortable("123456789"), 0xE3069283u);
}

TEST(Crc32cTest, HardwareAndPortableAgreeAndContinue) {
  std::string data;
  for (int i = 0; i < 300; ++i) data.push_back(static_cast<char>(i * 37 + 11));
  for (size_t len = 0; len <= data.size(); len += 7) {
    std::string_view s(data.data(), len);
    ASSERT_EQ(Crc32c(s), Crc32cPortable(s)) << len;
    // Continuing over a split gives the checksum of the whole.
    size_t half = len / 3;
    EXPECT_EQ(Crc32c(s.substr(half), Crc32c(s.substr(0, half))), Crc32c(s)) << len;
    EXPECT_EQ(Crc32cPortable(s.substr(half), Crc32cPortable(s.substr(0, half))), Crc32c(s));
  }
}

TEST(ChecksumHexTest, RoundTripsAndRefusesMalformed) {
  EXPECT_EQ(ChecksumToHex(0xE3069283u), "e3069283");
  EXPECT_EQ(ChecksumToHex(0x0000000Fu), "0000000f");
  auto v = ChecksumFromHex("E3069283");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, 0xE3069283u);
  for (const char* bad : {"", "e306928", "e30692830", "e306928g", "0x069283"}) {
    EXPECT_EQ(ChecksumFromHex(bad).status().code(), Code::kInvalidArgument) << bad;
  }
}

TEST(ChunkTest, VerifyDetectsDamage) {
  Chunk c = MakeChunk("d/a.log", 10, "hello\n");
  EXPECT_EQ(c.end(), 16u);
  EXPECT_TRUE(VerifyChunk(c).ok());
  c.data[0] = 'j';
  Status s = VerifyChunk(c);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("d/a.log"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("[10, 16)"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace tandem::replication
