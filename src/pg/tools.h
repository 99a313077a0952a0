// What PostgreSQL 15's command-line tools print, parsed; and quoting for the text tandem writes
// into PostgreSQL's configuration. Pure functions, used by LocalServer and unit-tested on
// captured output. The tools run with LC_ALL=C, so their messages are in English.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace tandem::pg {

// pg_controldata, the fields replication needs.
struct ControlData {
  std::string state;              // "shut down", "shut down in recovery", "in production", ...
  uint64_t checkpoint_lsn = 0;    // "Latest checkpoint location"
  int checkpoint_timeline = 0;    // "Latest checkpoint's TimeLineID"
  uint64_t min_recovery_lsn = 0;  // "Minimum recovery ending location" (0/0 when none)
  // pg_rewind works only on a cluster in one of these two states.
  bool CleanlyShutDown() const { return state == "shut down" || state == "shut down in recovery"; }
};
// Internal when a field is missing or malformed.
Result<ControlData> ParseControlData(std::string_view output);

// pg_rewind (also with --dry-run), what it decided.
struct RewindReport {
  bool rewind_required = false;
  bool same_timeline = false;  // "source and target cluster are on the same timeline"
  uint64_t diverged_lsn = 0;   // "servers diverged at WAL location X on timeline N"; 0 if absent
  int diverged_timeline = 0;
};
// Internal when the output says neither that a rewind is needed nor that none is.
Result<RewindReport> ParseRewindOutput(std::string_view output);

// pg_waldump --stats=record (no --rmgr filter): how many transactions committed between its
// start and the end of the WAL it could read, and where that end is.
struct WalStats {
  int64_t commits = 0;  // Transaction/COMMIT and Transaction/COMMIT_PREPARED records
  // "WAL statistics between A and B": B is the end of the last record read, where the next
  // record would start. Unfiltered, that is where the readable WAL ends.
  uint64_t end_lsn = 0;
  bool found = false;  // the statistics header was there
};
WalStats ParseWaldumpStats(std::string_view output);

// True when a replica's log shows that its WAL receiver can never go on from this upstream (the
// WAL it needs was removed, or its history is not the upstream's); not for passing trouble such
// as an upstream that is down.
bool WalReceiverCannotContinue(std::string_view log);

// A string literal for postgresql.conf: '...' with quotes and backslashes escaped.
std::string ConfQuote(std::string_view value);
// A SQL string literal (standard_conforming_strings is on): '...' with quotes doubled.
std::string SqlLiteral(std::string_view value);
// The value of synchronous_standby_names for these application names in priority order:
// FIRST 1 ("region-b") — a commit waits for the first of them that streams. "" for none.
std::string SynchronousStandbyNames(const std::vector<std::string>& names);

// postgresql.auto.conf (or any PostgreSQL config text) without the lines that set `keys`.
// `changed` tells whether anything was removed.
std::string RemoveSettings(std::string_view conf, const std::vector<std::string>& keys,
                           bool* changed);

}  // namespace tandem::pg
