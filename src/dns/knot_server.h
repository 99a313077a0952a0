// KnotServer: a Knot DNS server (Debian's `knot` package) that the control plane runs for the
// platform zone, the way a region runs its PostgreSQL and its registry.
//
// Layout under the state directory:
//   knot.conf      the configuration, generated at every start (0600)
//   <zone>.zone    the zone file, written at every start from the records the caller gives
//                  (the control plane's own state): the zone is rebuilt, never loaded from
//                  whatever Knot kept, so a restarted server answers what the control plane knows
//   run/           Knot's rundir (its control socket and knot.pid, by which a knotd left behind
//                  by a crashed control plane is found and stopped at the next start)
//   db/            Knot's databases (its journal holds nothing: journal-content none)
//   knot.log       knotd's stdout and stderr
//
// Knot listens on address@port (UDP and TCP), serves the one zone with the given TTL, and takes
// dynamic updates (RFC 2136) signed with the TSIG key only. Changes live in memory: the zone
// file is not rewritten by Knot (zonefile-sync -1) and is read whole at start.
//
// Running as root: like the registry, knotd is given the unprivileged user (`run_as`); as root
// without one, Start refuses (FailedPrecondition).
//
// Thread-safety: every method may be called from any thread; mu_ serialises start and stop.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "base/clock.h"
#include "base/process.h"
#include "base/status.h"
#include "dns/dns.h"

namespace tandem::dns {

struct KnotOptions {
  std::string binary = "/usr/sbin/knotd";
  std::string state_dir;  // absolute
  Server listen;          // address and port
  std::string zone;       // e.g. tandem.test
  uint32_t ttl = 5;
  TsigKey key;            // the only key that may update the zone
  std::string run_as;     // the system user knotd runs as (requires root); empty = this one
  Duration stop_grace = std::chrono::seconds(10);
};

class KnotServer {
 public:
  // InvalidArgument for a relative state directory, a bad zone, address, port or key.
  static Result<std::unique_ptr<KnotServer>> Create(KnotOptions options);
  ~KnotServer();  // stops knotd if it runs
  KnotServer(const KnotServer&) = delete;
  KnotServer& operator=(const KnotServer&) = delete;

  // Writes the configuration and the zone file holding `records` (host name -> IPv4 address;
  // names in the zone), starts knotd and waits until it answers for the zone. Stops a running
  // one first. FailedPrecondition when knotd is missing or the user cannot be used; Unavailable
  // when the port is taken, knotd exits, or it does not answer within `timeout` (with the tail
  // of its log).
  Status Start(const std::map<std::string, std::string>& records, Duration timeout);
  Status Stop();
  // True while the process lives (it is reaped when it died).
  bool Alive();
  pid_t pid() const;  // 0 when not running

  std::string config_path() const { return o_.state_dir + "/knot.conf"; }
  std::string zone_path() const { return o_.state_dir + "/" + o_.zone + ".zone"; }
  std::string log_path() const { return o_.state_dir + "/knot.log"; }

  // The texts Start writes.
  static std::string Config(const KnotOptions& o, const std::string& rundir,
                            const std::string& dbdir, const std::string& zone_file);
  static std::string ZoneFile(const KnotOptions& o,
                              const std::map<std::string, std::string>& records,
                              uint32_t serial);

 private:
  explicit KnotServer(KnotOptions o) : o_(std::move(o)) {}
  Status StopLocked();
  // Stops a knotd of this configuration that an earlier process left running (it crashed, or
  // was killed), found by Knot's pidfile: it would hold the port and the databases.
  void StopLeftover(const std::string& pidfile) const;
  std::string LogSince(long offset) const;

  const KnotOptions o_;
  mutable std::mutex mu_;
  ChildPtr child_;  // guarded by mu_
};

using KnotServerPtr = std::unique_ptr<KnotServer>;

}  // namespace tandem::dns
