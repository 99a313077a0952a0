#include "replication/apply_chunk.h"

#include <algorithm>
#include <string>
#include <string_view>

namespace tandem::replication {
namespace {

std::string Range(const Chunk& c) {
  return "[" + std::to_string(c.offset) + ", " + std::to_string(c.end()) + ")";
}

// Reads [offset, offset + length) of `key` (less when the object is shorter) and its size.
// A missing object reads as empty with size 0.
Status ReadRange(logs::LogStore& store, const std::string& key, uint64_t offset, uint64_t length,
                 std::string* out, uint64_t* size) {
  out->clear();
  *size = 0;
  uint64_t at = offset;
  while (true) {
    auto chunk = store.Read(key, at, length - (at - offset));
    if (!chunk.ok()) {
      if (chunk.status().code() == Code::kNotFound && at == offset) return Status::Ok();
      return chunk.status();
    }
    *size = chunk->size;
    out->append(chunk->data);
    if (chunk->data.empty() || out->size() >= length) return Status::Ok();
    at = chunk->next_offset;
  }
}

}  // namespace

ApplyResult ApplyChunk(logs::LogStore& store, const Chunk& chunk) {
  ApplyResult r;
  r.status = logs::CheckKey(chunk.key);
  if (!r.status.ok()) return r;
  r.status = VerifyChunk(chunk);
  if (!r.status.ok()) return r;

  std::string present;
  uint64_t size = 0;
  r.status = ReadRange(store, chunk.key, chunk.offset, chunk.data.size(), &present, &size);
  if (!r.status.ok()) {
    r.status = r.status.WithContext("cannot read log " + chunk.key + " to apply a chunk");
    return r;
  }
  r.receiver_size = size;
  if (chunk.offset > size) {
    r.status =
        FailedPrecondition("log " + chunk.key + " holds " + std::to_string(size) +
                           " bytes here, the chunk starts at " + std::to_string(chunk.offset) +
                           ": resend from " + std::to_string(size));
    return r;
  }
  if (std::string_view(chunk.data).substr(0, present.size()) != present) {
    size_t at = 0;
    while (at < present.size() && present[at] == chunk.data[at]) ++at;
    r.status = AlreadyExists("log " + chunk.key + " differs from the chunk " + Range(chunk) +
                             " at byte " + std::to_string(chunk.offset + at) +
                             ": the two regions' copies have diverged");
    return r;
  }
  if (present.size() < chunk.data.size()) {
    if (chunk.offset + present.size() != size) {
      r.status = Unavailable("log " + chunk.key + " changed while a chunk was applied to it");
      return r;
    }
    // `present` is a prefix of the chunk and ends at the object's end.
    r.status = store.Append(chunk.key, std::string_view(chunk.data).substr(present.size()));
    if (!r.status.ok()) {
      r.status =
          r.status.WithContext("cannot apply the chunk " + Range(chunk) + " of log " + chunk.key);
      return r;
    }
  }
  r.receiver_size = std::max(size, chunk.end());
  return r;
}

}  // namespace tandem::replication
