// A LogStore that records every append in the log journal, so the shippers can send it to the
// peer region and the object store, and that refuses appends once a sink is too far behind
// rather than letting the backlog grow without bound or dropping anything.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "base/status.h"
#include "logs/log_store.h"
#include "replication/apply_chunk.h"
#include "replication/chunk.h"
#include "replication/log_journal.h"

namespace tandem::replication {

struct ReplicatingLogStoreOptions {
  // Most bytes any cursor may have unacknowledged. An append that would go past it fails with
  // Unavailable ("log replication to <cursor> is N bytes behind, over the bound of M"), unless
  // the cursor has nothing pending (so one large append is never refused for ever).
  uint64_t max_unacked_bytes = uint64_t{256} << 20;
  // Object sizes remembered; past it the table is cleared and sizes are read again on demand.
  size_t max_tracked_keys = 100000;
};

// Wraps `inner` (the region's log store) and `journal`, both of which must outlive it.
// Append writes to `inner`, then journals {key, offset = size before, length, checksum} with
// origin local; Read and Remove pass through. replica_view() is the same store seen by the
// receiver of the peer's chunks: its appends are journaled with origin replicated. An append
// that no cursor of the journal would send (LogJournal::Wants) is written but not journaled.
//
// Thread-safe. Appends to one key are serialised (the journaled offsets must match the bytes),
// appends to different keys run in parallel. Every write must go through this object: a write
// to `inner` behind its back leaves the remembered size wrong.
class ReplicatingLogStore final : public logs::LogStore {
 public:
  ReplicatingLogStore(logs::LogStore& inner, LogJournal& journal,
                      ReplicatingLogStoreOptions options = {});

  Status Append(std::string_view key, std::string_view data) override;
  Result<logs::LogChunk> Read(std::string_view key, uint64_t offset, uint64_t max_bytes) override;
  Status Remove(std::string_view key) override;

  // Where ApplyChunk writes the peer's chunks. Owned by this object.
  logs::LogStore& replica_view() { return replica_view_; }

  // ApplyChunk(replica_view(), chunk), but a chunk that starts exactly where the object ends
  // (the usual case: the peer ships each log in order) is appended without reading anything
  // back, the size checked and the bytes appended under the key's lock.
  ApplyResult ApplyReplicated(const Chunk& chunk);

 private:
  class ReplicaView final : public logs::LogStore {
   public:
    explicit ReplicaView(ReplicatingLogStore& owner) : owner_(owner) {}
    Status Append(std::string_view key, std::string_view data) override {
      return owner_.AppendAs(key, data, Origin::kReplicated);
    }
    Result<logs::LogChunk> Read(std::string_view key, uint64_t offset,
                                uint64_t max_bytes) override {
      return owner_.Read(key, offset, max_bytes);
    }
    Status Remove(std::string_view key) override { return owner_.Remove(key); }

   private:
    ReplicatingLogStore& owner_;
  };

  static constexpr size_t kStripes = 64;

  Status AppendAs(std::string_view key, std::string_view data, Origin origin);
  // Appends at `offset`, the object's size. REQUIRES: the key's stripe is held.
  Status AppendLocked(const std::string& key, std::string_view data, Origin origin,
                      uint64_t offset);
  Status CheckBound(Origin origin, uint64_t size) const;
  // The object's size, from the table or read from `inner_`.
  // REQUIRES: the key's stripe is held.
  Result<uint64_t> SizeOf(const std::string& key);
  std::mutex& StripeOf(std::string_view key);

  // Constant after construction.
  logs::LogStore& inner_;
  LogJournal& journal_;
  const ReplicatingLogStoreOptions options_;
  ReplicaView replica_view_{*this};

  std::array<std::mutex, kStripes> stripes_;  // one is held across a key's append
  std::mutex sizes_mu_;
  std::unordered_map<std::string, uint64_t> sizes_;  // guarded by sizes_mu_
};

}  // namespace tandem::replication
