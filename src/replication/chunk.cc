#include "replication/chunk.h"

#include <array>
#include <cstring>

namespace tandem::replication {
namespace {

constexpr uint32_t kPolynomial = 0x82F63B78;  // Castagnoli, reflected

// kTables[k][b]: the CRC of byte b followed by k zero bytes (slicing-by-8).
using Tables = std::array<std::array<uint32_t, 256>, 8>;

constexpr Tables MakeTables() {
  Tables t{};
  for (uint32_t b = 0; b < 256; ++b) {
    uint32_t crc = b;
    for (int i = 0; i < 8; ++i) crc = (crc >> 1) ^ ((crc & 1) != 0 ? kPolynomial : 0);
    t[0][b] = crc;
  }
  for (uint32_t b = 0; b < 256; ++b) {
    for (size_t k = 1; k < 8; ++k) t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xFF];
  }
  return t;
}

constexpr Tables kTables = MakeTables();

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t Crc32cHardware(std::string_view data, uint32_t crc) {
  uint64_t c = ~crc;
  const char* p = data.data();
  size_t n = data.size();
  while (n >= 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);
    c = __builtin_ia32_crc32di(c, word);
    p += 8;
    n -= 8;
  }
  auto c32 = static_cast<uint32_t>(c);
  while (n > 0) {
    c32 = __builtin_ia32_crc32qi(c32, static_cast<unsigned char>(*p));
    ++p;
    --n;
  }
  return ~c32;
}

bool HasSse42() {
  static const bool has = __builtin_cpu_supports("sse4.2") != 0;
  return has;
}
#endif

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

uint32_t Crc32cPortable(std::string_view data, uint32_t crc) {
  uint32_t c = ~crc;
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  size_t n = data.size();
  while (n >= 8) {
    uint32_t lo =
        c ^ (uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24);
    c = kTables[7][lo & 0xFF] ^ kTables[6][(lo >> 8) & 0xFF] ^ kTables[5][(lo >> 16) & 0xFF] ^
        kTables[4][lo >> 24] ^ kTables[3][p[4]] ^ kTables[2][p[5]] ^ kTables[1][p[6]] ^
        kTables[0][p[7]];
    p += 8;
    n -= 8;
  }
  while (n > 0) {
    c = (c >> 8) ^ kTables[0][(c ^ *p) & 0xFF];
    ++p;
    --n;
  }
  return ~c;
}

uint32_t Crc32c(std::string_view data, uint32_t crc) {
#if defined(__x86_64__)
  if (HasSse42()) return Crc32cHardware(data, crc);
#endif
  return Crc32cPortable(data, crc);
}

std::string ChecksumToHex(uint32_t checksum) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(8, '0');
  for (int i = 7; i >= 0; --i) {
    out[static_cast<size_t>(i)] = kDigits[checksum & 0xF];
    checksum >>= 4;
  }
  return out;
}

Result<uint32_t> ChecksumFromHex(std::string_view hex) {
  if (hex.size() != 8) {
    return InvalidArgument("a chunk checksum is 8 hex digits, not \"" + std::string(hex) + "\"");
  }
  uint32_t v = 0;
  for (char c : hex) {
    int d = HexValue(c);
    if (d < 0) {
      return InvalidArgument("a chunk checksum is 8 hex digits, not \"" + std::string(hex) + "\"");
    }
    v = (v << 4) | static_cast<uint32_t>(d);
  }
  return v;
}

Chunk MakeChunk(std::string key, uint64_t offset, std::string data) {
  Chunk c;
  c.checksum = Crc32c(data);
  c.key = std::move(key);
  c.offset = offset;
  c.data = std::move(data);
  return c;
}

Status VerifyChunk(const Chunk& chunk) {
  uint32_t actual = Crc32c(chunk.data);
  if (actual == chunk.checksum) return Status::Ok();
  return InvalidArgument("chunk of log " + chunk.key + " at bytes [" +
                         std::to_string(chunk.offset) + ", " + std::to_string(chunk.end()) +
                         ") has checksum " + ChecksumToHex(actual) + ", not the sender's " +
                         ChecksumToHex(chunk.checksum) + ": damaged in transit");
}

}  // namespace tandem::replication
