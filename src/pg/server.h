// Control of one PostgreSQL server, behind one interface.
//
// The region agent owns a Server: it initialises it, starts it, keeps it running and stops it
// on shutdown, and drives physical replication through it (base backup, promote, rewind; see
// replication.h for the protocol). The control plane never reaches into a region's database, it
// asks the region agent, which calls this.
//
// Implementations:
//   LocalServer    - a server this process manages: initdb into a directory, `postgres` as a
//                    child process (as an unprivileged user when we run as root).
//   ExternalServer - a server someone else runs, reached by a connection string.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "pg/replication.h"

namespace tandem::pg {

struct ServerState {
  bool running = false;  // accepting connections
  int restarts = 0;      // times the supervisor restarted it after it died
  std::string detail;    // a sentence for /readyz and logs
};

class Server {
 public:
  virtual ~Server() = default;

  // Idempotent: creates the cluster when there is none yet.
  virtual Status Init() = 0;
  // Starts the server and waits until it accepts connections (or `timeout`).
  virtual Status Start(std::chrono::milliseconds timeout) = 0;
  // Stops it cleanly (fast shutdown); idempotent.
  virtual Status Stop() = 0;
  // Called periodically by the owner: restarts the server if it died. OK if running.
  virtual Status Supervise() = 0;
  virtual ServerState State() = 0;
  // A libpq connection string for `database`.
  virtual std::string Dsn(const std::string& database) const = 0;

  // --- Physical replication. An ExternalServer refuses all of these but Sample(): an external
  // PostgreSQL is replicated by whoever runs it.

  // Makes this server a replica of `up` when it has no cluster yet: creates `up.slot` on the
  // upstream if missing and takes a base backup through it (instead of initdb). A half-finished
  // base backup is removed and taken again from scratch. Idempotent when the cluster exists.
  // Either way the next Start() streams from `up`. REQUIRES: the server is not running.
  virtual Status InitReplica(const Upstream& up, Duration timeout) = 0;
  // What the next Start() configures: a replica of `up`, or a primary (nullopt).
  virtual Status SetUpstream(std::optional<Upstream> up) = 0;
  // On a running primary: commits wait until the first of `standby_names` (application names)
  // that streams has applied them (synchronous_commit = remote_apply); none: commits wait for
  // no standby. Takes effect at once, also for sessions already waiting for a standby. It stays
  // set across restarts of this primary but is not carried to another server: a server starting
  // as a replica drops it (a base backup or pg_rewind copies it), so a promoted server starts
  // asynchronous.
  virtual Status SetSynchronous(const std::vector<std::string>& standby_names) = 0;
  // Ends recovery on a running replica and waits until it accepts writes; from then on it
  // starts as a primary. Idempotent on a primary (seconds is then 0).
  virtual Result<PromoteInfo> Promote(Duration timeout) = 0;
  // On a running primary: creates the physical replication slot if missing, reserving WAL from
  // now. Slots do not survive promotion: a new primary calls this for its peer at once.
  virtual Status EnsureSlot(const std::string& slot) = 0;
  // Turns this server (running or not, possibly killed earlier) into a replica of `up`, which
  // must be running: pg_rewind when its history diverged from the upstream's, a fresh base
  // backup when pg_rewind cannot; then starts it streaming. What it had that the upstream never
  // had is measured first and reported. From the call on, any start of this server (also by
  // Supervise) is as a replica of `up`, even when the rejoin fails: a fenced primary never comes
  // back as one.
  virtual Result<RejoinInfo> Rejoin(const Upstream& up, Duration timeout) = 0;
  // One reading of the replication state of the running server.
  virtual Result<ReplicationSample> Sample() = 0;
};

using ServerPtr = std::unique_ptr<Server>;

struct LocalServerOptions {
  std::string data_dir;  // PGDATA; its parent holds the log and the password file
  std::string bin_dir = "/usr/lib/postgresql/15/bin";
  std::string host = "127.0.0.1";
  int port = 5432;
  std::string superuser = "tandem";
  std::string run_as;                         // system user; required when running as root
  std::vector<std::string> replication_from;  // peer addresses allowed to stream from us
  std::string shared_buffers = "32MB";
  int max_connections = 100;
  // The superuser's password. Empty: generated at the first Init. Both servers of a pair derive
  // the same one from their shared secret key (a base backup copies the roles, and a replica
  // logs in to its upstream with it).
  std::string password;
  // When set, the server runs as a replica of this upstream (see Server::SetUpstream).
  std::optional<Upstream> upstream;
  // How much WAL a primary keeps for a replica that stopped reading its slot, so a long-dead
  // replica cannot fill the disk; past it the slot is invalidated and that replica needs a
  // fresh base backup (Rejoin takes one).
  std::string max_slot_wal_keep_size = "4GB";
  // TLS: with a certificate (covering `host`) and its key, the server takes TCP connections over
  // TLS only (hostssl), and every connection this process and its replication make is
  // sslmode=verify-full against `tls_ca_file` (empty: the system's CA bundle). Copies owned by
  // the run-as user are kept beside the data directory; empty: no TLS.
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_ca_file;
};

// The server keeps its password in <parent of data_dir>/pg.password (mode 0600) and uses it in
// Dsn(). Init writes it (the given one, or a random one the first time); when the file held
// another password, a primary's superuser gets the new one at the next Start.
//
// Init creates the cluster with initdb only when no upstream is set: a replica's cluster comes
// from InitReplica's base backup (an initdb'd cluster there would be unrelated to the primary).
Result<ServerPtr> NewLocalServer(LocalServerOptions opts);
Result<ServerPtr> NewExternalServer(std::string dsn);

}  // namespace tandem::pg
