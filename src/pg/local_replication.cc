// LocalServer's replication: base backup, synchronous mode, promotion, slots, rejoin, sampling.
//
// How a rejoin works (docs/disaster-recovery.md, "When the old region returns: reverse sync"):
//   1. Stop the server. If it was not shut down cleanly (killed), single-user crash recovery
//      brings it to a clean shutdown first: PostgreSQL 15's pg_rewind does that itself, but not
//      with --dry-run, which then refuses the cluster.
//   2. On the upstream: CHECKPOINT (a just-promoted server's control file names its new timeline
//      only after one; before it pg_rewind may wrongly say "no rewind required") and the slot.
//   3. pg_rewind --dry-run says where the two histories diverged; pg_waldump counts this
//      server's commits past that point and finds where its WAL ends. This is measured before
//      the real run, which replaces those WAL files with the upstream's.
//   4. pg_rewind for real, when needed. If it fails, or cannot compare the clusters (another
//      system), or the rewound server cannot stream, a base backup replaces the data directory.
//      It is taken into data.partial first, so a failed one leaves the old directory in place.
//   5. Start as a replica: tandem.conf and pg_hba.conf are written again (pg_rewind copied the
//      upstream's), standby.signal is created and the upstream's synchronous settings dropped.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <thread>

#include "base/fs.h"
#include "pg/local_server.h"
#include "pg/tools.h"

namespace tandem::pg {
namespace {

using namespace std::chrono_literals;

double Seconds(Duration d) { return std::chrono::duration<double>(d).count(); }

std::chrono::milliseconds Left(MonoTime deadline) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - RealClock().Now());
}

// libpq's connect_timeout for the time left (at least 1 s, at most 10 s).
std::string ConnectTimeout(MonoTime deadline) {
  auto s = std::chrono::duration_cast<std::chrono::seconds>(Left(deadline)).count();
  return std::to_string(std::clamp<int64_t>(s, 1, 10));
}

std::string Describe(const RunOutput& r) {
  std::string out = r.output;
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  if (out.size() > 2000) out = "..." + out.substr(out.size() - 2000);
  return r.exit.Describe() + (out.empty() ? "" : ": " + out);
}

bool Succeeded(const RunOutput& r) { return r.exit.exited && r.exit.code == 0; }

// Creates a physical slot that reserves WAL from now, unless it exists. A slot that
// max_slot_wal_keep_size invalidated ("lost") keeps nothing: it is made again.
Status CreateSlotIfMissing(Conn& c, const std::string& slot) {
  ASSIGN_OR_RETURN(Rows r, c.Exec("SELECT wal_status, active FROM pg_replication_slots "
                                  "WHERE slot_name = $1",
                                  {slot}));
  if (r.size() > 0) {
    if (r.Text(0, 0) != "lost" || r.Bool(0, 1)) return Status::Ok();
    spdlog::warn("replication slot {} lost its WAL (max_slot_wal_keep_size); making it again",
                 slot);
    RETURN_IF_ERROR(c.Exec("SELECT pg_drop_replication_slot($1)", {slot}).status());
  }
  auto made = c.Exec("SELECT pg_create_physical_replication_slot($1, true)", {slot});
  if (made.ok()) {
    spdlog::info("created replication slot {}", slot);
    return Status::Ok();
  }
  // Made meanwhile by someone else: as good.
  ASSIGN_OR_RETURN(Rows again,
                   c.Exec("SELECT 1 FROM pg_replication_slots WHERE slot_name = $1", {slot}));
  return again.size() > 0 ? Status::Ok() : made.status();
}

Status ValidateSlotName(const std::string& slot) {
  Upstream probe{.host = "-", .port = 1, .slot = slot, .application_name = "-"};
  return ValidateUpstream(probe);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Sampling.

Result<ReplicationSample> ReplicationSampler::Sample(const std::string& dsn) {
  std::lock_guard lock(mu_);
  if (conn_ && !conn_->CheckAlive()) conn_.reset();
  if (!conn_) {
    ASSIGN_OR_RETURN(conn_, Conn::Connect(dsn, {{"connect_timeout", "2"},
                                                {"options", "-c statement_timeout=5000"}}));
  }
  // The timeline: a primary's from its WAL file name; a replica's from what it receives, or
  // (not streaming) from its last restartpoint.
  auto r = conn_->Exec(
      "SELECT pg_is_in_recovery(),"
      " CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END,"
      " pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text,"
      " CASE WHEN pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn()"
      "  THEN COALESCE(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0)"
      "  ELSE 0 END,"
      " (SELECT status FROM pg_stat_wal_receiver LIMIT 1),"
      " CASE WHEN pg_is_in_recovery()"
      "  THEN COALESCE((SELECT received_tli FROM pg_stat_wal_receiver LIMIT 1),"
      "                (SELECT timeline_id FROM pg_control_checkpoint()))"
      "  ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END");
  if (!r.ok()) {
    conn_.reset();
    return r.status();
  }
  auto lsn = [&](int col) -> uint64_t {
    auto v = r->Opt(0, col);
    if (!v) return 0;
    auto p = ParseLsn(*v);
    return p.ok() ? *p : 0;
  };
  ReplicationSample s;
  s.in_recovery = r->Bool(0, 0);
  s.current_lsn = lsn(1);
  s.receive_lsn = lsn(2);
  s.replay_lsn = lsn(3);
  s.replay_age_s = std::max(0.0, std::strtod(r->Text(0, 4).c_str(), nullptr));
  s.streaming = r->Text(0, 5) == "streaming";
  s.timeline = r->IsNull(0, 6) ? 0 : static_cast<int>(r->Int(0, 6));
  if (s.in_recovery) return s;
  auto rows = conn_->Exec(
      "SELECT application_name, state, sync_state, sent_lsn::text, flush_lsn::text,"
      " replay_lsn::text, COALESCE(extract(epoch FROM replay_lag), 0)"
      " FROM pg_stat_replication ORDER BY application_name, pid");
  if (!rows.ok()) {
    conn_.reset();
    return rows.status();
  }
  for (int i = 0; i < rows->size(); ++i) {
    auto at = [&](int col) -> uint64_t {
      auto p = ParseLsn(rows->Text(i, col));
      return p.ok() ? *p : 0;
    };
    s.replicas.push_back(ReplicaState{
        .application_name = rows->Text(i, 0),
        .state = rows->Text(i, 1),
        .sync_state = rows->Text(i, 2),
        .sent_lsn = at(3),
        .flush_lsn = at(4),
        .replay_lsn = at(5),
        .replay_lag_s = std::strtod(rows->Text(i, 6).c_str(), nullptr),
    });
  }
  return s;
}

Result<ReplicationSample> LocalServer::Sample() { return sampler_.Sample(Dsn("postgres")); }

// ---------------------------------------------------------------------------------------------
// Tools.

Result<RunOutput> LocalServer::RunTool(std::vector<std::string> argv, MonoTime deadline,
                                       const std::string& password) const {
  argv[0] = o_.bin_dir + "/" + argv[0];
  SpawnOptions so{.argv = std::move(argv),
                  .env_extra = {{"LC_ALL", "C"},
                                {"LANG", "C"},
                                {"PGCONNECT_TIMEOUT", "10"},
                                {"HOME", dir_}},  // libpq looks under ~/.postgresql
                  .cwd = dir_};  // the run-as user may not enter our working directory
  if (!password.empty()) so.env_extra["PGPASSWORD"] = password;
  if (tls()) {  // pg_basebackup's connection (pg_rewind's source names them too)
    so.env_extra["PGSSLMODE"] = "verify-full";
    so.env_extra["PGSSLROOTCERT"] = dir_ + "/root.crt";
  }
  if (ids_) so.user = o_.run_as;
  return RunCommand(so, std::max(Left(deadline), std::chrono::milliseconds(1000)));
}

// ---------------------------------------------------------------------------------------------
// Base backup.

Status LocalServer::InitReplica(const Upstream& up, Duration timeout) {
  RETURN_IF_ERROR(ValidateUpstream(up));
  const MonoTime t0 = RealClock().Now();
  std::lock_guard lock(mu_);
  RETURN_IF_ERROR(PrepareLocked());
  if (PathExists(o_.data_dir + "/PG_VERSION")) {
    upstream_ = up;
    return Status::Ok();
  }
  RETURN_IF_ERROR(BaseBackupLocked(up, t0 + timeout));
  upstream_ = up;
  spdlog::info("PostgreSQL in {}: base backup of {}:{} taken in {:.2f} s", o_.data_dir, up.host,
               up.port, Seconds(RealClock().Now() - t0));
  return Status::Ok();
}

Status LocalServer::BaseBackupLocked(const Upstream& up, MonoTime deadline) {
  const std::string partial = PartialPath();
  const std::string old = o_.data_dir + ".old";
  // Whatever an interrupted backup (or swap) left behind.
  RETURN_IF_ERROR(RemoveAll(partial));
  RETURN_IF_ERROR(RemoveAll(old));
  {
    std::string dsn = "host=" + DsnQuote(up.host) + " port=" + std::to_string(up.port) +
                      " user=" + DsnQuote(o_.superuser) + " password=" + DsnQuote(password_) +
                      " dbname=postgres application_name=tandem" + SslConninfo();
    ASSIGN_OR_RETURN(ConnPtr c,
                     Conn::Connect(dsn, {{"connect_timeout", ConnectTimeout(deadline)}}));
    RETURN_IF_ERROR(CreateSlotIfMissing(*c, up.slot));
  }
  RETURN_IF_ERROR(MakeDirs(partial, 0700));
  if (ids_) RETURN_IF_ERROR(ChownRecursive(partial, ids_->uid, ids_->gid));
  ASSIGN_OR_RETURN(RunOutput r,
                   RunTool({"pg_basebackup", "-h", up.host, "-p", std::to_string(up.port), "-U",
                            o_.superuser, "-D", partial, "-X", "stream", "--checkpoint=fast",
                            "--slot", up.slot, "--no-password", "--no-manifest"},
                           deadline, password_));
  if (!Succeeded(r)) {
    (void)RemoveAll(partial);
    return Unavailable("pg_basebackup of " + up.host + ":" + std::to_string(up.port) + " " +
                       Describe(r));
  }
  // Complete: it replaces the data directory (kept until then, whatever it held).
  if (PathExists(o_.data_dir) && rename(o_.data_dir.c_str(), old.c_str()) != 0) {
    return Internal("cannot move " + o_.data_dir + " aside: " + strerror(errno));
  }
  if (rename(partial.c_str(), o_.data_dir.c_str()) != 0) {
    return Internal("cannot move the base backup to " + o_.data_dir + ": " + strerror(errno));
  }
  RETURN_IF_ERROR(RemoveAll(old));
  unlink(OldPasswordPath().c_str());  // the roles are the upstream's now
  return EnsureIncludeLine();         // copied from the upstream, but it may not be one of ours
}

// ---------------------------------------------------------------------------------------------
// Roles.

Status LocalServer::SetUpstream(std::optional<Upstream> up) {
  if (up) RETURN_IF_ERROR(ValidateUpstream(*up));
  std::lock_guard lock(mu_);
  upstream_ = std::move(up);
  return Status::Ok();
}

Status LocalServer::SetSynchronous(const std::vector<std::string>& standby_names) {
  for (const auto& n : standby_names) {
    RETURN_IF_ERROR(
        ValidateUpstream(Upstream{.host = "-", .port = 1, .slot = "s", .application_name = n}));
  }
  ASSIGN_OR_RETURN(ConnPtr c, Conn::Connect(Dsn("postgres"), {{"connect_timeout", "5"}}));
  // ALTER SYSTEM and a reload write no transaction to wait for: this works while other
  // sessions wait for a standby, and releases them when the list becomes empty.
  RETURN_IF_ERROR(c->ExecScript("SET synchronous_commit = local"));
  ASSIGN_OR_RETURN(Rows r, c->Exec("SELECT pg_is_in_recovery()"));
  if (r.Bool(0, 0)) {
    return FailedPrecondition("synchronous replication is a primary's setting; PostgreSQL on " +
                              o_.host + ":" + std::to_string(o_.port) + " is a replica");
  }
  if (standby_names.empty()) {
    RETURN_IF_ERROR(c->ExecScript("ALTER SYSTEM RESET synchronous_standby_names"));
    RETURN_IF_ERROR(c->ExecScript("ALTER SYSTEM RESET synchronous_commit"));
  } else {
    RETURN_IF_ERROR(c->ExecScript("ALTER SYSTEM SET synchronous_commit = 'remote_apply'"));
    RETURN_IF_ERROR(c->ExecScript("ALTER SYSTEM SET synchronous_standby_names = " +
                                  SqlLiteral(SynchronousStandbyNames(standby_names))));
  }
  RETURN_IF_ERROR(c->Exec("SELECT pg_reload_conf()").status());
  spdlog::info("PostgreSQL on {}:{}: synchronous_standby_names = '{}'", o_.host, o_.port,
               SynchronousStandbyNames(standby_names));
  return Status::Ok();
}

Result<PromoteInfo> LocalServer::Promote(Duration timeout) {
  const MonoTime t0 = RealClock().Now();
  const MonoTime deadline = t0 + timeout;
  std::lock_guard lock(mu_);
  if (!child_ || child_->Poll()) {
    return FailedPrecondition("PostgreSQL on " + o_.host + ":" + std::to_string(o_.port) +
                              " is not running: start it before promoting it");
  }
  ASSIGN_OR_RETURN(ConnPtr c,
                   Conn::Connect(Dsn("postgres"), {{"connect_timeout", ConnectTimeout(deadline)}}));
  ASSIGN_OR_RETURN(Rows rec, c->Exec("SELECT pg_is_in_recovery()"));
  const bool was_replica = rec.Bool(0, 0);
  if (was_replica) {
    // Not pg_promote(true): it checks for the end of recovery every 100 ms, which rounded every
    // promotion up to the next tenth of a second, in the middle of every failover's downtime.
    ASSIGN_OR_RETURN(Rows p, c->Exec("SELECT pg_promote(false)"));
    if (!p.Bool(0, 0)) {
      return Unavailable("PostgreSQL on " + o_.host + ":" + std::to_string(o_.port) +
                         " could not be told to promote");
    }
    while (true) {
      ASSIGN_OR_RETURN(Rows again, c->Exec("SELECT pg_is_in_recovery()"));
      if (!again.Bool(0, 0)) break;
      if (RealClock().Now() >= deadline) {
        return Unavailable("PostgreSQL on " + o_.host + ":" + std::to_string(o_.port) +
                           " is still in recovery after its promotion");
      }
      std::this_thread::sleep_for(10ms);
    }
  }
  PromoteInfo info;
  info.seconds = was_replica ? Seconds(RealClock().Now() - t0) : 0;
  // A primary from now on, also when it restarts (PostgreSQL removed standby.signal).
  upstream_.reset();
  RETURN_IF_ERROR(WriteRoleFiles());
  // Where the current timeline began: the last line of its history file (none on timeline 1).
  ASSIGN_OR_RETURN(Rows t,
                   c->Exec("SELECT tli, CASE WHEN tli > 1 THEN pg_read_file(format("
                           "'pg_wal/%s.history', lpad(to_hex(tli), 8, '0'))) END FROM ("
                           "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))"
                           "::bit(32)::int AS tli) AS cur"));
  info.timeline = static_cast<int>(t.Int(0, 0));
  std::string history = t.Text(0, 1);
  while (!history.empty() && history.back() == '\n') history.pop_back();
  std::string last = history.substr(history.find_last_of('\n') + 1);
  // "1\t0/3018048\tno recovery target specified"
  if (size_t tab = last.find('\t'); tab != std::string::npos) {
    std::string lsn = last.substr(tab + 1, last.find('\t', tab + 1) - tab - 1);
    if (auto v = ParseLsn(lsn); v.ok()) info.lsn = *v;
  }
  if (was_replica) {
    spdlog::info("PostgreSQL on {}:{} promoted in {:.3f} s: timeline {} from {}", o_.host, o_.port,
                 info.seconds, info.timeline, FormatLsn(info.lsn));
  }
  return info;
}

Status LocalServer::EnsureSlot(const std::string& slot) {
  RETURN_IF_ERROR(ValidateSlotName(slot));
  ASSIGN_OR_RETURN(ConnPtr c, Conn::Connect(Dsn("postgres"), {{"connect_timeout", "5"}}));
  ASSIGN_OR_RETURN(Rows r, c->Exec("SELECT pg_is_in_recovery()"));
  if (r.Bool(0, 0)) {
    // A slot on a replica would hold its WAL until it is promoted.
    return FailedPrecondition("replication slots are made on the primary; PostgreSQL on " +
                              o_.host + ":" + std::to_string(o_.port) + " is a replica");
  }
  return CreateSlotIfMissing(*c, slot);
}

// ---------------------------------------------------------------------------------------------
// Rejoin.

Status LocalServer::EnsureCleanShutdownLocked(MonoTime deadline) {
  auto control = [&]() -> Result<ControlData> {
    ASSIGN_OR_RETURN(RunOutput r, RunTool({"pg_controldata", "-D", o_.data_dir}, deadline));
    if (!Succeeded(r)) return Internal("pg_controldata " + Describe(r));
    return ParseControlData(r.output);
  };
  ASSIGN_OR_RETURN(ControlData cd, control());
  if (cd.CleanlyShutDown()) return Status::Ok();
  spdlog::info(
      "PostgreSQL in {} was not shut down cleanly ({}): crash recovery in single-user "
      "mode",
      o_.data_dir, cd.state);
  // Single-user mode refuses standby mode; plain crash recovery is what is wanted here (the
  // next start makes it a replica again).
  for (const char* f : {"/standby.signal", "/recovery.signal"}) {
    std::string p = o_.data_dir + f;
    if (unlink(p.c_str()) != 0 && errno != ENOENT) {
      return Internal("cannot remove " + p + ": " + strerror(errno));
    }
  }
  Backoff backoff(50ms, 1s);
  while (true) {
    ASSIGN_OR_RETURN(RunOutput r,
                     RunTool({"postgres", "--single", "-D", o_.data_dir, "template1"}, deadline));
    if (Succeeded(r)) break;
    // The killed server's backends still hold its shared memory until they notice.
    bool leftovers =
        r.output.find("pre-existing shared memory block") != std::string::npos ||
        r.output.find("lock file \"postmaster.pid\" already exists") != std::string::npos;
    if (!leftovers || stopping_ || RealClock().Now() >= deadline) {
      return Internal("crash recovery of " + o_.data_dir + " in single-user mode " + Describe(r));
    }
    std::this_thread::sleep_for(backoff.Next());
  }
  ASSIGN_OR_RETURN(cd, control());
  if (!cd.CleanlyShutDown()) {
    return Internal("after crash recovery, " + o_.data_dir + " is still '" + cd.state + "'");
  }
  return Status::Ok();
}

Status LocalServer::RewindLocked(const Upstream& up, uint64_t upstream_lsn, MonoTime deadline,
                                 RejoinInfo* info) {
  const std::string source = "host=" + DsnQuote(up.host) + " port=" + std::to_string(up.port) +
                             " user=" + DsnQuote(o_.superuser) +
                             " dbname=postgres application_name=tandem_rewind" + SslConninfo();
  ASSIGN_OR_RETURN(RunOutput dry, RunTool({"pg_rewind", "--target-pgdata", o_.data_dir,
                                           "--source-server", source, "--dry-run"},
                                          deadline, password_));
  if (!Succeeded(dry)) return Internal("pg_rewind --dry-run " + Describe(dry));
  ASSIGN_OR_RETURN(RewindReport rep, ParseRewindOutput(dry.output));

  // Where this server's WAL ends: what a scan from its latest checkpoint can read, or the
  // minimum recovery point of a replica if later (as pg_rewind reckons it).
  ASSIGN_OR_RETURN(RunOutput ctl, RunTool({"pg_controldata", "-D", o_.data_dir}, deadline));
  if (!Succeeded(ctl)) return Internal("pg_controldata " + Describe(ctl));
  ASSIGN_OR_RETURN(ControlData cd, ParseControlData(ctl.output));
  const std::string wal = o_.data_dir + "/pg_wal";
  // pg_waldump ends in an error at the end of the WAL; the statistics are printed before it.
  auto scan = [&](uint64_t from, int timeline) -> Result<WalStats> {
    ASSIGN_OR_RETURN(RunOutput r,
                     RunTool({"pg_waldump", "--path", wal, "--start", FormatLsn(from), "--timeline",
                              std::to_string(timeline), "--stats=record"},
                             deadline));
    WalStats st = ParseWaldumpStats(r.output);
    if (!st.found) return Internal("pg_waldump from " + FormatLsn(from) + " " + Describe(r));
    return st;
  };
  const uint64_t known_end = std::max(cd.checkpoint_lsn + 1, cd.min_recovery_lsn);

  if (!rep.rewind_required) {
    if (rep.same_timeline) {
      // pg_rewind compares nothing on one timeline: this server must not be ahead.
      ASSIGN_OR_RETURN(WalStats st, scan(cd.checkpoint_lsn, cd.checkpoint_timeline));
      const uint64_t end = std::max(st.end_lsn, cd.min_recovery_lsn);
      if (end > upstream_lsn) {
        return FailedPrecondition("this server's WAL ends at " + FormatLsn(end) +
                                  ", past its upstream's " + FormatLsn(upstream_lsn) +
                                  " on the same timeline: it has writes the upstream never had");
      }
    }
    info->method = "none";
    info->discarded_transactions = 0;
    info->discarded_bytes = 0;
    info->diverged_lsn = rep.diverged_lsn;
    info->detail = "its WAL is part of the upstream's history: nothing to undo";
    return Status::Ok();
  }

  // Measured now: the real run replaces these WAL files with the upstream's.
  info->diverged_lsn = rep.diverged_lsn;
  std::string measured;
  if (auto st = scan(rep.diverged_lsn, rep.diverged_timeline); !st.ok()) {
    measured = "; what it discards could not be measured: " + st.status().message();
  } else if (st->end_lsn < known_end) {
    // Its WAL goes on on another timeline, or a segment is missing.
    measured = "; what it discards could not be measured: pg_waldump stopped at " +
               FormatLsn(st->end_lsn) + ", before the end of its WAL";
  } else {
    const uint64_t end = std::max(st->end_lsn, cd.min_recovery_lsn);
    info->discarded_transactions = st->commits;
    info->discarded_bytes = static_cast<int64_t>(end - std::min(end, rep.diverged_lsn));
  }

  const MonoTime t0 = RealClock().Now();
  ASSIGN_OR_RETURN(RunOutput real,
                   RunTool({"pg_rewind", "--target-pgdata", o_.data_dir, "--source-server", source},
                           deadline, password_));
  if (!Succeeded(real)) return Internal("pg_rewind " + Describe(real));
  info->method = "rewind";
  char buf[256];
  if (info->discarded_transactions >= 0) {
    snprintf(buf, sizeof buf,
             "rewound from %s on timeline %d in %.2f s, discarding %lld transactions (%lld "
             "bytes of WAL)",
             FormatLsn(rep.diverged_lsn).c_str(), rep.diverged_timeline,
             Seconds(RealClock().Now() - t0), static_cast<long long>(info->discarded_transactions),
             static_cast<long long>(info->discarded_bytes));
  } else {
    snprintf(buf, sizeof buf, "rewound from %s on timeline %d in %.2f s",
             FormatLsn(rep.diverged_lsn).c_str(), rep.diverged_timeline,
             Seconds(RealClock().Now() - t0));
  }
  info->detail = buf + measured;
  return Status::Ok();
}

Status LocalServer::StartStreamingLocked(MonoTime deadline) {
  const long log_from = LogSize();
  RETURN_IF_ERROR(StartUntilLocked(deadline));
  // Running is not streaming: a replica that is consistent from its own WAL accepts
  // connections even when the upstream can never feed it.
  ASSIGN_OR_RETURN(ConnPtr c,
                   Conn::Connect(Dsn("postgres"), {{"connect_timeout", ConnectTimeout(deadline)}}));
  const MonoTime until = std::min(deadline, RealClock().Now() + 30s);
  while (true) {
    ASSIGN_OR_RETURN(Rows r, c->Exec("SELECT status FROM pg_stat_wal_receiver"));
    if (r.size() > 0 && r.Text(0, 0) == "streaming") return Status::Ok();
    std::string log = LogSince(log_from);
    if (WalReceiverCannotContinue(log)) {
      (void)StopLocked();
      return FailedPrecondition("it cannot stream from its upstream; its log says:\n" +
                                log.substr(log.size() > 1500 ? log.size() - 1500 : 0));
    }
    if (RealClock().Now() >= until || stopping_) {
      return Unavailable("started as a replica but not streaming yet");
    }
    std::this_thread::sleep_for(50ms);
  }
}

Status LocalServer::ClearSlotsLocked() {
  const std::string dir = o_.data_dir + "/pg_replslot";
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    spdlog::info("PostgreSQL in {}: dropping replication slot {} (a replica keeps none)",
                 o_.data_dir, e.path().filename().string());
    RETURN_IF_ERROR(RemoveAll(e.path().string()));
  }
  if (ec) return Internal("cannot list " + dir + ": " + ec.message());
  return Status::Ok();
}

Result<RejoinInfo> LocalServer::Rejoin(const Upstream& up, Duration timeout) {
  RETURN_IF_ERROR(ValidateUpstream(up));
  const MonoTime t0 = RealClock().Now();
  const MonoTime deadline = t0 + timeout;
  stopping_ = false;
  std::lock_guard lock(mu_);
  RETURN_IF_ERROR(PrepareLocked());
  // From here on, whatever happens, this server starts only as a replica of `up`.
  upstream_ = up;
  RETURN_IF_ERROR(StopLocked());
  RETURN_IF_ERROR(StopStrayPostmaster());
  const std::string where = up.host + ":" + std::to_string(up.port);

  // The upstream: a checkpoint (for pg_rewind), the slot, and how far its WAL goes.
  uint64_t upstream_lsn = 0;
  {
    std::string dsn = "host=" + DsnQuote(up.host) + " port=" + std::to_string(up.port) +
                      " user=" + DsnQuote(o_.superuser) + " password=" + DsnQuote(password_) +
                      " dbname=postgres application_name=tandem" + SslConninfo();
    ASSIGN_OR_RETURN(ConnPtr c,
                     Conn::Connect(dsn, {{"connect_timeout", ConnectTimeout(deadline)}}));
    RETURN_IF_ERROR(c->ExecScript("CHECKPOINT"));
    RETURN_IF_ERROR(CreateSlotIfMissing(*c, up.slot));
    ASSIGN_OR_RETURN(Rows r,
                     c->Exec("SELECT CASE WHEN pg_is_in_recovery() THEN "
                             "pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END::text"));
    ASSIGN_OR_RETURN(upstream_lsn, ParseLsn(r.Text(0, 0)));
  }

  RejoinInfo info;
  auto finish = [&](RejoinInfo done) {
    done.seconds = Seconds(RealClock().Now() - t0);
    wanted_ = true;
    spdlog::info("PostgreSQL on {}:{} rejoined {} ({}) in {:.2f} s: {}", o_.host, o_.port, where,
                 done.method, done.seconds, done.detail);
    return done;
  };
  Status why;
  if (!PathExists(o_.data_dir + "/PG_VERSION")) {
    why = NotFound("there is no cluster in " + o_.data_dir);
  } else {
    why = EnsureCleanShutdownLocked(deadline);
    if (why.ok()) why = RewindLocked(up, upstream_lsn, deadline, &info);
    if (why.ok()) {
      unlink(OldPasswordPath().c_str());  // the roles are the upstream's now
      // Its slots are its own, from when it was a primary (pg_rewind leaves pg_replslot
      // alone): on a replica they would only hold WAL.
      why = ClearSlotsLocked();
    }
    if (why.ok()) {
      Status s = StartStreamingLocked(deadline);
      if (s.ok()) return finish(info);
      if (child_ && !child_->Poll()) {
        info.detail += "; " + s.message();
        return finish(info);  // running as a replica: it streams once the upstream lets it
      }
      why = s;  // it cannot run as a replica of `up`
    }
  }
  if (stopping_) return Unavailable("rejoin abandoned: the region is stopping");
  spdlog::warn("PostgreSQL on {}:{}: {}; taking a fresh base backup of {}", o_.host, o_.port,
               why.message(), where);
  RETURN_IF_ERROR(StopLocked());
  const MonoTime b0 = RealClock().Now();
  RETURN_IF_ERROR(BaseBackupLocked(up, deadline));
  const double backup_s = Seconds(RealClock().Now() - b0);
  RejoinInfo bb;
  bb.method = "base_backup";
  // What a failed rewind measured still stands; otherwise it is unknown.
  bb.discarded_transactions = info.discarded_transactions;
  bb.discarded_bytes = info.discarded_bytes;
  bb.diverged_lsn = info.diverged_lsn;
  char buf[128];
  snprintf(buf, sizeof buf, "fresh base backup in %.2f s, because ", backup_s);
  bb.detail = buf + why.message();
  Status s = StartStreamingLocked(deadline);
  if (!s.ok()) {
    if (!child_ || child_->Poll()) return s.WithContext("rejoining " + where);
    bb.detail += "; " + s.message();
  }
  return finish(bb);
}

}  // namespace tandem::pg
