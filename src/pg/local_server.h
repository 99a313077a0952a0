// LocalServer's declaration, shared by the two files that implement it (local_server.cc: the
// cluster and its process; local_replication.cc: replication). Internal to the pg module: other
// modules use Server and NewLocalServer().
#pragma once

#include <atomic>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/process.h"
#include "pg/conn.h"
#include "pg/server.h"

namespace tandem::pg {

// Samples one server's replication state over a connection it keeps between calls (the region
// samples at a steady rate; a new connection each time would cost a SCRAM exchange). The
// connection is reopened when it broke (a restarted server). Thread-safe.
class ReplicationSampler {
 public:
  Result<ReplicationSample> Sample(const std::string& dsn);

 private:
  std::mutex mu_;
  ConnPtr conn_;  // guarded by mu_
};

// A PostgreSQL 15 cluster this process manages (see local_server.cc for its directory layout).
//
// Thread-safety: every method may be called from any thread. mu_ is held for as long as an
// operation changes the server's process or data directory (start, stop, restart, base backup,
// rejoin, promotion), so these never overlap; Supervise() and State() do not wait for it.
// SQL-only methods (SetSynchronous, EnsureSlot, Sample) do not take it.
class LocalServer final : public Server {
 public:
  explicit LocalServer(LocalServerOptions o);
  ~LocalServer() override { (void)Stop(); }

  Status Init() override;
  Status Start(std::chrono::milliseconds timeout) override;
  Status Stop() override;
  Status Supervise() override;
  ServerState State() override;
  std::string Dsn(const std::string& database) const override;

  Status InitReplica(const Upstream& up, Duration timeout) override;
  Status SetUpstream(std::optional<Upstream> up) override;
  Status SetSynchronous(const std::vector<std::string>& standby_names) override;
  Result<PromoteInfo> Promote(Duration timeout) override;
  Status EnsureSlot(const std::string& slot) override;
  Result<RejoinInfo> Rejoin(const Upstream& up, Duration timeout) override;
  Result<ReplicationSample> Sample() override;

 private:
  std::string PasswordPath() const { return dir_ + "/pg.password"; }
  // The password the cluster's superuser had before Init replaced pg.password; removed once
  // the role has the new one.
  std::string OldPasswordPath() const { return dir_ + "/pg.password.old"; }
  std::string LogPath() const { return dir_ + "/postgres.log"; }
  // Where a base backup is written before it replaces data_dir.
  std::string PartialPath() const { return o_.data_dir + ".partial"; }
  uid_t Uid() const;
  gid_t Gid() const;
  std::string LogTail() const;
  long LogSize() const;
  // What the server logged since the log had `offset` bytes (at most the last 64 KiB).
  std::string LogSince(long offset) const;

  // REQUIRES for all below: mu_ is held.
  // Run-as user, directory and password; once per object.
  Status PrepareLocked();
  Status WriteSettings();
  // With TLS: " sslmode=verify-full sslrootcert=<its copy of the CA>" for every conninfo this
  // server's clients (this process, the tools, its walreceiver) use; "" without.
  std::string SslConninfo() const;
  // This process's conninfo for `database`: through the Unix socket when there is one.
  std::string LocalDsn(const std::string& database, const std::string& password) const;
  Status PrepareSocketDir();
  bool tls() const { return !o_.tls_cert_file.empty(); }
  // The include line for tandem.conf in postgresql.conf (a copied config may lack it).
  Status EnsureIncludeLine();
  // Replica: standby.signal, and no synchronous settings in postgresql.auto.conf (they are the
  // primary's, copied by a base backup or pg_rewind). Primary: no standby.signal.
  Status WriteRoleFiles();
  Status StopStrayPostmaster();
  Status StopLocked();
  // Starts and waits for connections, retrying while a dead server's processes still hold its
  // shared memory, until `deadline` (a primary still in crash recovery gets more time; a
  // replica that can never become consistent fails at once, FailedPrecondition).
  Status StartUntilLocked(MonoTime deadline);
  Status StartLocked(std::chrono::milliseconds timeout);
  // Starts as a replica and waits (30 s at most) until its WAL receiver streams.
  // FailedPrecondition, and stopped, when it can never stream from its upstream; Unavailable,
  // and running, when it does not stream yet.
  Status StartStreamingLocked(MonoTime deadline);
  // A primary whose pg.password changed: its superuser gets the new password.
  Status ApplyNewPasswordLocked();
  // pg_basebackup of `up` into data_dir (through PartialPath()), creating the slot first.
  Status BaseBackupLocked(const Upstream& up, MonoTime deadline);
  // Runs a PostgreSQL program from bin_dir as the run-as user, in English, with `password` as
  // PGPASSWORD when not empty. The output is stdout and stderr together.
  Result<RunOutput> RunTool(std::vector<std::string> argv, MonoTime deadline,
                            const std::string& password = "") const;
  // Single-user crash recovery of a cluster that was not shut down cleanly (as pg_rewind does,
  // but before measuring: PostgreSQL 15's pg_rewind --dry-run refuses such a cluster).
  Status EnsureCleanShutdownLocked(MonoTime deadline);
  // The rewind part of Rejoin: fills `info` and returns OK when the data directory now follows
  // `up` (method "none" or "rewind"); an error means a base backup must replace it.
  // Removes this (stopped) server's replication slots.
  Status ClearSlotsLocked();
  // `upstream_lsn` is how far the upstream's WAL went when this server was already stopped.
  Status RewindLocked(const Upstream& up, uint64_t upstream_lsn, MonoTime deadline,
                      RejoinInfo* info);

  const LocalServerOptions o_;
  std::string dir_;             // the parent of data_dir; constant after construction
  std::string socket_dir_;      // the Unix socket's directory, "" when its path would be too long
  std::optional<UserIds> ids_;  // set by PrepareLocked when running as another user

  std::mutex mu_;
  ChildPtr child_;                // guarded by mu_
  std::atomic<int> restarts_{0};  // written under mu_, read without it
  // Start() was called and Stop() was not: Supervise() keeps a server running.
  bool wanted_ = false;  // guarded by mu_
  // Set by Stop() before it takes mu_, so a start in progress gives up at once.
  std::atomic<bool> stopping_{false};
  // Supervise(): when the next restart may be tried, and how long to wait after a failure.
  MonoTime next_restart_{};  // guarded by mu_
  Backoff restart_backoff_{std::chrono::milliseconds(100), std::chrono::seconds(10)};
  bool prepared_ = false;             // guarded by mu_
  std::optional<Upstream> upstream_;  // guarded by mu_: what the next start configures
  // Written once by the first Init/InitReplica/Rejoin, before any other use; read-only after.
  std::string password_;
  ReplicationSampler sampler_;
};

}  // namespace tandem::pg
