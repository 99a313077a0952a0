// The receiving side of log replication: applies a chunk to a log store so that applying it
// again, or applying an overlapping resend, changes nothing.
//
// Protocol. The sender ships a log object as chunks in offset order and keeps its cursor until
// the receiver answers. The receiver compares the chunk with what it holds (size S):
//   - checksum wrong            -> InvalidArgument, nothing written (damaged in transit; resend);
//   - offset > S                -> FailedPrecondition with receiver_size = S (a gap: the sender
//                                  resends from S, reading its own store);
//   - [offset, min(end, S)) differs from the chunk
//                               -> AlreadyExists, a conflict (the objects diverged, e.g. after a
//                                  forced failover), nothing written;
//   - end <= S, same bytes      -> OK, a duplicate;
//   - otherwise                 -> the part past S is appended (a torn earlier write, or new).
// An answer other than OK never advances the sender, so a chunk applied halfway (a crash
// between the receiver's write and its answer) is sent again and completes as "torn prefix".
#pragma once

#include <cstdint>

#include "base/status.h"
#include "logs/log_store.h"
#include "replication/chunk.h"

namespace tandem::replication {

struct ApplyResult {
  Status status;
  // The object's size at the receiver after the attempt: chunk.end() on success, the size it
  // holds on a gap or a conflict (0 when the object does not exist), 0 when the chunk was refused
  // before the store was read.
  uint64_t receiver_size = 0;

  // A gap: the receiver holds less than the chunk's offset; resend from receiver_size.
  bool gap() const { return status.code() == Code::kFailedPrecondition; }
  // The receiver holds different bytes in the chunk's range.
  bool conflict() const { return status.code() == Code::kAlreadyExists; }
};

// Applies `chunk` to `store` as described above.
// REQUIRES: no other writer appends to chunk.key concurrently (the check and the append are not
// atomic); one sender per object, as LogShipper is, satisfies it.
ApplyResult ApplyChunk(logs::LogStore& store, const Chunk& chunk);

}  // namespace tandem::replication
