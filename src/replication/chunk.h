// A chunk is the unit of log replication: a byte range of one log object, with a CRC32C of its
// bytes computed at the source. A receiver verifies the checksum before writing anything, so a
// chunk damaged in transit is refused instead of stored.
//
// CRC32C (Castagnoli) rather than SHA-256: chunks are small and many (every log line of every
// running task), the threat is accidental damage on disk or on the wire (the link between the
// regions is authenticated), and CRC32C costs a few cycles per byte where SHA-256 costs tens.
// It is also the checksum S3 accepts as x-amz-checksum-crc32c.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace tandem::replication {

// CRC32C of `data`, continuing from `crc` (0 for a fresh checksum). Uses the SSE4.2 instruction
// when the CPU has it.
uint32_t Crc32c(std::string_view data, uint32_t crc = 0);

// The portable table-driven version, for tests that compare the two.
uint32_t Crc32cPortable(std::string_view data, uint32_t crc = 0);

// 8 lowercase hex digits, for carrying a checksum in text (HTTP headers, JSON).
std::string ChecksumToHex(uint32_t checksum);
// InvalidArgument unless `hex` is exactly 8 hex digits.
Result<uint32_t> ChecksumFromHex(std::string_view hex);

struct Chunk {
  std::string key;      // the log object (a LogStore key)
  uint64_t offset = 0;  // where `data` starts in the object
  std::string data;
  uint32_t checksum = 0;  // Crc32c(data), computed where the bytes were read

  uint64_t end() const { return offset + data.size(); }
};

// A chunk with its checksum computed over `data`.
Chunk MakeChunk(std::string key, uint64_t offset, std::string data);

// InvalidArgument when the checksum does not match the data (naming the key and range).
Status VerifyChunk(const Chunk& chunk);

}  // namespace tandem::replication
