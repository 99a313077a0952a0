#include "replication/replicating_log_store.h"

#include <functional>

#include "replication/chunk.h"

namespace tandem::replication {

ReplicatingLogStore::ReplicatingLogStore(logs::LogStore& inner, LogJournal& journal,
                                         ReplicatingLogStoreOptions options)
    : inner_(inner), journal_(journal), options_(options) {}

std::mutex& ReplicatingLogStore::StripeOf(std::string_view key) {
  return stripes_[std::hash<std::string_view>{}(key) % kStripes];
}

Status ReplicatingLogStore::CheckBound(Origin origin, uint64_t size) const {
  for (const CursorStats& s : journal_.AllStats()) {
    if (s.local_only && origin != Origin::kLocal) continue;
    if (s.bytes_behind == 0 || s.bytes_behind + size <= options_.max_unacked_bytes) continue;
    return Unavailable(
        "log replication to " + s.name + " is " + std::to_string(s.bytes_behind) + " bytes (" +
        std::to_string(s.chunks_behind) + " chunks) behind, over the bound of " +
        std::to_string(options_.max_unacked_bytes) + ": the log is not written until " + s.name +
        " catches up (is it reachable?)");
  }
  return Status::Ok();
}

Result<uint64_t> ReplicatingLogStore::SizeOf(const std::string& key) {
  {
    std::lock_guard lock(sizes_mu_);
    auto it = sizes_.find(key);
    if (it != sizes_.end()) return it->second;
  }
  auto chunk = inner_.Read(key, 0, 0);
  if (!chunk.ok()) {
    if (chunk.status().code() == Code::kNotFound) return uint64_t{0};
    return chunk.status();
  }
  return chunk->size;
}

Status ReplicatingLogStore::Append(std::string_view key, std::string_view data) {
  return AppendAs(key, data, Origin::kLocal);
}

Status ReplicatingLogStore::AppendAs(std::string_view key, std::string_view data, Origin origin) {
  RETURN_IF_ERROR(logs::CheckKey(key));
  if (data.empty()) return Status::Ok();
  RETURN_IF_ERROR(CheckBound(origin, data.size()));
  std::string k(key);
  std::lock_guard stripe(StripeOf(key));
  ASSIGN_OR_RETURN(uint64_t offset, SizeOf(k));
  return AppendLocked(k, data, origin, offset);
}

Status ReplicatingLogStore::AppendLocked(const std::string& key, std::string_view data,
                                         Origin origin, uint64_t offset) {
  Status appended = inner_.Append(key, data);
  {
    std::lock_guard lock(sizes_mu_);
    if (!appended.ok()) {
      sizes_.erase(key);  // a partial write leaves the size unknown
    } else {
      if (sizes_.size() >= options_.max_tracked_keys && sizes_.count(key) == 0) sizes_.clear();
      sizes_[key] = offset + data.size();
    }
  }
  RETURN_IF_ERROR(appended);
  if (!journal_.Wants(origin)) return Status::Ok();
  auto seq = journal_.Append(key, offset, data.size(), Crc32c(data), origin, data);
  if (!seq.ok()) {
    // The bytes are in the store but not in the journal: a later append to this key leaves a
    // gap at the receiver, which is filled from this store.
    return seq.status().WithContext("log " + key +
                                    " was written but not journaled for replication");
  }
  return Status::Ok();
}

ApplyResult ReplicatingLogStore::ApplyReplicated(const Chunk& chunk) {
  ApplyResult r;
  r.status = logs::CheckKey(chunk.key);
  if (r.status.ok()) r.status = VerifyChunk(chunk);
  if (!r.status.ok()) return r;
  if (chunk.data.empty()) return ApplyChunk(replica_view_, chunk);
  r.status = CheckBound(Origin::kReplicated, chunk.data.size());
  if (!r.status.ok()) return r;
  {
    std::lock_guard stripe(StripeOf(chunk.key));
    Result<uint64_t> size = SizeOf(chunk.key);
    if (size.ok() && *size == chunk.offset) {
      r.status = AppendLocked(chunk.key, chunk.data, Origin::kReplicated, chunk.offset);
      if (!r.status.ok()) {
        r.status = r.status.WithContext("cannot apply the chunk [" + std::to_string(chunk.offset) +
                                        ", " + std::to_string(chunk.end()) + ") of log " +
                                        chunk.key);
        return r;
      }
      r.receiver_size = chunk.end();
      return r;
    }
  }
  // A resend, a gap or a divergence: compare with what is here.
  return ApplyChunk(replica_view_, chunk);
}

Result<logs::LogChunk> ReplicatingLogStore::Read(std::string_view key, uint64_t offset,
                                                 uint64_t max_bytes) {
  return inner_.Read(key, offset, max_bytes);
}

Status ReplicatingLogStore::Remove(std::string_view key) {
  std::lock_guard stripe(StripeOf(key));
  Status s = inner_.Remove(key);
  std::lock_guard lock(sizes_mu_);
  sizes_.erase(std::string(key));
  return s;
}

}  // namespace tandem::replication
