// Physical replication between the two PostgreSQL servers of a region pair: the values that
// travel through Server's replication methods, and LSN text.
//
// The protocol, as the region agents drive it (docs/disaster-recovery.md, "Roles"):
//   - The secondary takes a base backup of the primary through a physical slot named for it
//     (InitReplica) and streams from that slot (Start with an upstream).
//   - A planned or forced failover promotes the secondary (Promote); it creates a slot for its
//     peer at once (EnsureSlot), because slots do not survive promotion.
//   - The old primary, when it returns, becomes a replica of the new one (Rejoin): pg_rewind when
//     its history diverged, a fresh base backup when pg_rewind cannot; what it discards is
//     measured first and reported.
//   - A primary in synchronous mode waits, at commit, until its named standby has applied the
//     commit (SetSynchronous); the region turns it off when the standby is gone too long.
// Both servers of a pair share the superuser's password (derived from the pair's secret key):
// a base backup copies the roles, and a replica logs in to its upstream with its own password.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace tandem::pg {

// The primary a replica streams from.
struct Upstream {
  std::string host;
  int port = 0;
  // The physical replication slot on the upstream that keeps WAL for this replica, e.g.
  // "tandem_region_b" (lower-case letters, digits and underscores, at most 63).
  std::string slot;
  // The replica's region name: shown in the upstream's pg_stat_replication and named by its
  // synchronous_standby_names.
  std::string application_name;
};

// InvalidArgument when a field is empty, out of range or not allowed where it goes.
Status ValidateUpstream(const Upstream& up);

// What a promotion did.
struct PromoteInfo {
  uint64_t lsn = 0;    // where the new timeline begins (the last WAL replayed as a replica)
  int timeline = 0;    // the timeline the server writes on now
  double seconds = 0;  // how long the promotion took (0 when it already was a primary)
};

// What turning a former primary (or any server) into a replica did.
struct RejoinInfo {
  // "none": its WAL was a prefix of the upstream's, nothing to undo;
  // "rewind": pg_rewind undid its diverged history;
  // "base_backup": a fresh copy of the upstream replaced its data directory.
  std::string method;
  // Commits of this server that the upstream never had, now discarded; -1 when unknown
  // (pg_rewind could not compare the two histories, or the WAL could not be read).
  int64_t discarded_transactions = -1;
  // Bytes of this server's WAL past the divergence point, discarded with them; -1 when unknown.
  int64_t discarded_bytes = -1;
  uint64_t diverged_lsn = 0;  // where the two histories part (0 when unknown)
  double seconds = 0;         // the whole rejoin, until the server was running again
  std::string detail;         // a sentence for the event log: what was done, and why
};

// One replica connected to a primary, as its pg_stat_replication shows it.
struct ReplicaState {
  std::string application_name;  // the replica's region name
  std::string state;             // startup, catchup, streaming, backup, stopping
  std::string sync_state;        // async, potential, sync, quorum
  uint64_t sent_lsn = 0;
  uint64_t flush_lsn = 0;
  uint64_t replay_lsn = 0;
  double replay_lag_s = 0;  // pg_stat_replication.replay_lag; 0 when PostgreSQL shows none
};

// One reading of a server's replication state (a few cheap queries), taken at a steady rate by
// the region, never per request.
struct ReplicationSample {
  bool in_recovery = false;  // a replica
  int timeline = 0;          // the timeline it writes (primary) or receives (replica); 0 unknown
  // Primary.
  uint64_t current_lsn = 0;            // pg_current_wal_lsn()
  std::vector<ReplicaState> replicas;  // pg_stat_replication
  // Replica.
  uint64_t receive_lsn = 0;  // pg_last_wal_receive_lsn(): flushed from the upstream
  uint64_t replay_lsn = 0;   // pg_last_wal_replay_lsn(): visible to queries
  // Seconds since the last replayed commit was made on the primary, while received WAL is not
  // yet replayed; 0 when it has replayed all it received (an idle primary is not lag).
  double replay_age_s = 0;
  bool streaming = false;  // pg_stat_wal_receiver says 'streaming'
};

// PostgreSQL's text for an LSN: "16/B374D848" (upper-case hex, no leading zeros).
std::string FormatLsn(uint64_t lsn);
// The inverse: "X/Y", each part 1 to 8 hex digits. InvalidArgument otherwise.
Result<uint64_t> ParseLsn(std::string_view text);

}  // namespace tandem::pg
