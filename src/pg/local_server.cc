// LocalServer: a PostgreSQL 15 cluster this process manages (its process and directory; the
// replication operations are in local_replication.cc).
//
// Layout under the region's pg directory (the parent of data_dir):
//   data/           PGDATA, owned by the run-as user, mode 0700
//   data.partial/   a base backup being taken (replaces data/ once complete)
//   pg.password     the superuser's password (0600, owned by the region's user)
//   pg.password.old the superuser's previous password, until a primary's role has the new one
//   postgres.log    the server's stdout and stderr
//   run/            the server's Unix socket, owned by the run-as user, mode 0700: this process
//                   connects through it (no TCP, no TLS: it never leaves the machine, and no
//                   other user, a task's included, can reach it); TCP is for the peer region
// Settings that tandem owns are written to data/tandem.conf (and pg_hba.conf, standby.signal)
// at every start and included from postgresql.conf, so they come back after anything (a base
// backup, pg_rewind) copies another server's config files over the cluster's own.
#include "pg/local_server.h"

#include <fcntl.h>
#include <libpq-fe.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <thread>

#include "base/fs.h"
#include "base/net.h"
#include "base/random.h"
#include "pg/tools.h"

namespace tandem::pg {
namespace {

using namespace std::chrono_literals;

constexpr char kIncludeLine[] = "include_if_exists = 'tandem.conf'";
// Debian's bundle of the CAs the system trusts: what verify-full checks against when the region
// names no CA of its own.
constexpr char kSystemCaBundle[] = "/etc/ssl/certs/ca-certificates.crt";

// A file in the data directory, which belongs to the run-as user: a link planted there is not
// followed (we may be root).
Result<std::string> ReadDataFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return NotFound("no such file: " + path);
    return Internal("cannot read " + path + ": " + strerror(errno));
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return Internal("not a regular file: " + path);
  }
  std::string out;
  char buf[8192];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  if (n < 0) return Internal("cannot read " + path + ": " + strerror(errno));
  return out;
}

std::string QuoteIdentifier(const std::string& name) {
  std::string out = "\"";
  for (char c : name) {
    out += c;
    if (c == '"') out += '"';
  }
  return out + "\"";
}

}  // namespace

LocalServer::LocalServer(LocalServerOptions o) : o_(std::move(o)) {
  dir_ = o_.data_dir.substr(0, o_.data_dir.find_last_of('/'));
  upstream_ = o_.upstream;
  // A socket's path has room for 107 bytes: a state directory too deep for it connects over
  // TCP (with TLS when the server has it), as the peer does.
  const std::string socket_dir = dir_ + "/run";
  const std::string socket = socket_dir + "/.s.PGSQL." + std::to_string(o_.port);
  if (socket.size() < sizeof(sockaddr_un{}.sun_path)) socket_dir_ = socket_dir;
}

uid_t LocalServer::Uid() const { return ids_ ? ids_->uid : geteuid(); }
gid_t LocalServer::Gid() const { return ids_ ? ids_->gid : getegid(); }

Status LocalServer::PrepareLocked() {
  if (prepared_) return Status::Ok();
  if (!o_.run_as.empty()) {
    ASSIGN_OR_RETURN(ids_, LookupUser(o_.run_as));
  } else if (RunningAsRoot()) {
    return FailedPrecondition(
        "PostgreSQL refuses to run as root: set postgres.managed.run_as to an "
        "unprivileged system user");
  }
  RETURN_IF_ERROR(EnsureWritableDir(dir_));
  if (!socket_dir_.empty()) RETURN_IF_ERROR(PrepareSocketDir());
  if (ids_) {
    std::string blocked = FirstUnsearchableAncestor(dir_, ids_->uid, ids_->gid);
    if (!blocked.empty()) {
      return PermissionDenied("the PostgreSQL directory " + dir_ + " is not reachable by user '" +
                              o_.run_as + "': no search permission on " + blocked +
                              "; choose a state directory outside it (e.g. --state-dir "
                              "/var/lib/tandem)");
    }
  }
  std::optional<std::string> current;
  if (PathExists(PasswordPath())) {
    ASSIGN_OR_RETURN(current, ReadFile(PasswordPath()));
  }
  if (!o_.password.empty() && current && *current != o_.password) {
    // The role still has the old password: keep it until a primary's Start changes the role
    // (the oldest one, if the password changed twice before that).
    if (!PathExists(OldPasswordPath())) {
      RETURN_IF_ERROR(WriteFileAtomic(OldPasswordPath(), *current, 0600));
    }
    RETURN_IF_ERROR(WriteFileAtomic(PasswordPath(), o_.password, 0600));
    spdlog::info(
        "the PostgreSQL superuser's password changed; a primary takes it at its next "
        "start");
  } else if (!current) {
    RETURN_IF_ERROR(WriteFileAtomic(
        PasswordPath(), o_.password.empty() ? HexEncode(RandomBytes(24)) : o_.password, 0600));
  }
  ASSIGN_OR_RETURN(std::string pw, ReadFile(PasswordPath()));
  password_ = pw;
  if (tls()) {
    // Copies owned by the run-as user, beside the data directory (which a base backup
    // replaces): PostgreSQL refuses a key others can read, and the tools and the walreceiver,
    // which run as that user, read the CA.
    ASSIGN_OR_RETURN(std::string cert, ReadFile(o_.tls_cert_file));
    ASSIGN_OR_RETURN(std::string key, ReadFile(o_.tls_key_file));
    ASSIGN_OR_RETURN(std::string ca, ReadFile(o_.tls_ca_file.empty() ? std::string(kSystemCaBundle)
                                                                     : o_.tls_ca_file));
    RETURN_IF_ERROR(WriteFileAtomicAs(dir_ + "/server.crt", cert, 0600, Uid(), Gid()));
    RETURN_IF_ERROR(WriteFileAtomicAs(dir_ + "/server.key", key, 0600, Uid(), Gid()));
    RETURN_IF_ERROR(WriteFileAtomicAs(dir_ + "/root.crt", ca, 0600, Uid(), Gid()));
  }
  prepared_ = true;
  return Status::Ok();
}

// The socket's directory is the server's own (it creates the socket and its lock file there)
// and no one else's: mode 0700 keeps every other user (tasks run as users of their own) from
// even reaching the socket.
Status LocalServer::PrepareSocketDir() {
  if (mkdir(socket_dir_.c_str(), 0700) != 0 && errno != EEXIST) {
    return Internal("cannot create " + socket_dir_ + ": " + strerror(errno));
  }
  // Through a descriptor opened without following links: never chown a link's target.
  const int fd = open(socket_dir_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return Internal(socket_dir_ + " is not a directory: " + strerror(errno));
  const bool given = fchown(fd, Uid(), Gid()) == 0 && fchmod(fd, 0700) == 0;
  const int err = errno;
  close(fd);
  if (!given) {
    return Internal("cannot give " + socket_dir_ + " to PostgreSQL's user: " + strerror(err));
  }
  return Status::Ok();
}

Status LocalServer::Init() {
  std::lock_guard lock(mu_);
  RETURN_IF_ERROR(PrepareLocked());
  if (PathExists(o_.data_dir + "/PG_VERSION")) return Status::Ok();
  // A replica's cluster is a copy of its primary's (InitReplica); one made here would be
  // unrelated to it.
  if (upstream_) return Status::Ok();
  for (const std::string& p : {PartialPath(), o_.data_dir + ".old"}) {
    if (!PathExists(p)) continue;
    std::string msg = "a base backup into " + p;
    msg +=
        " was interrupted: this server was becoming a replica; give it an upstream and call "
        "InitReplica (or remove ";
    msg += p;
    msg += " to start an empty primary)";
    return FailedPrecondition(msg);
  }

  // A half-finished initdb leaves a directory behind; start over.
  RETURN_IF_ERROR(RemoveAll(o_.data_dir));
  RETURN_IF_ERROR(MakeDirs(o_.data_dir, 0700));
  std::string pwfile = o_.data_dir + ".pwfile";
  RETURN_IF_ERROR(WriteFileAtomic(pwfile, password_, 0600));
  if (ids_) {
    RETURN_IF_ERROR(ChownRecursive(o_.data_dir, ids_->uid, ids_->gid));
    RETURN_IF_ERROR(ChownRecursive(pwfile, ids_->uid, ids_->gid));
  }
  SpawnOptions so{.argv = {o_.bin_dir + "/initdb", "-D", o_.data_dir, "--data-checksums", "-U",
                           o_.superuser, "--pwfile", pwfile, "--auth=scram-sha-256", "-E", "UTF8",
                           "--locale=C.UTF-8", "--no-instructions"}};
  if (ids_) so.user = o_.run_as;
  auto r = RunCommand(so, 120s);
  unlink(pwfile.c_str());
  if (!r.ok()) return r.status().WithContext("initdb");
  if (!r->exit.exited || r->exit.code != 0) {
    return Internal("initdb " + r->exit.Describe() + ": " + r->output);
  }
  unlink(OldPasswordPath().c_str());  // the new cluster's role has the current password
  RETURN_IF_ERROR(EnsureIncludeLine());
  spdlog::info("initialised PostgreSQL cluster in {}", o_.data_dir);
  return Status::Ok();
}

Status LocalServer::EnsureIncludeLine() {
  const std::string path = o_.data_dir + "/postgresql.conf";
  ASSIGN_OR_RETURN(std::string conf, ReadDataFile(path));
  if (conf.find(kIncludeLine) != std::string::npos) return Status::Ok();
  if (!conf.empty() && conf.back() != '\n') conf += '\n';
  conf += "\n# Settings owned by tandem, rewritten at every start.\n";
  conf += kIncludeLine;
  conf += '\n';
  return WriteFileAtomicAs(path, conf, 0600, Uid(), Gid());
}

Status LocalServer::WriteSettings() {
  std::string conf = "listen_addresses = '" + o_.host +
                     "'\n"
                     "port = " +
                     std::to_string(o_.port) +
                     "\n"
                     "unix_socket_directories = " +
                     ConfQuote(socket_dir_) +
                     "\n"
                     "unix_socket_permissions = 0700\n"
                     "max_connections = " +
                     std::to_string(o_.max_connections) +
                     "\n"
                     "shared_buffers = '" +
                     o_.shared_buffers +
                     "'\n"
                     "wal_level = replica\n"
                     "wal_log_hints = on\n"
                     "max_wal_senders = 10\n"
                     "max_replication_slots = 10\n"
                     "max_slot_wal_keep_size = " +
                     ConfQuote(o_.max_slot_wal_keep_size) +
                     "\n"
                     "hot_standby = on\n"
                     "password_encryption = 'scram-sha-256'\n"
                     "fsync = on\n"
                     "synchronous_commit = on\n"
                     "logging_collector = off\n"
                     "log_line_prefix = '%m [%p] '\n";
  if (upstream_) {
    // The replica logs in with its own password: both servers of a pair have the same one.
    const Upstream& up = *upstream_;
    std::string conninfo = "host=" + DsnQuote(up.host) + " port=" + std::to_string(up.port) +
                           " user=" + DsnQuote(o_.superuser) + " password=" + DsnQuote(password_) +
                           " application_name=" + DsnQuote(up.application_name) +
                           " connect_timeout=5" + SslConninfo();
    conf += "\n# A replica of " + up.host + ":" + std::to_string(up.port) +
            ".\n"
            "primary_conninfo = " +
            ConfQuote(conninfo) +
            "\n"
            "primary_slot_name = " +
            ConfQuote(up.slot) +
            "\n"
            "hot_standby_feedback = on\n"
            "wal_receiver_status_interval = 1s\n"
            "wal_retrieve_retry_interval = 1s\n"
            "recovery_target_timeline = 'latest'\n";
  }
  // With TLS, every TCP connection must be TLS (hostssl), with the files PrepareLocked copied.
  const std::string host = tls() ? "hostssl" : "host   ";
  if (tls()) {
    conf +=
        "ssl = on\n"
        "ssl_cert_file = " +
        ConfQuote(dir_ + "/server.crt") +
        "\n"
        "ssl_key_file = " +
        ConfQuote(dir_ + "/server.key") +
        "\n"
        "ssl_min_protocol_version = 'TLSv1.2'\n";
  }
  std::string hba =
      "# Written by tandem at every start.\n"
      "# TYPE  DATABASE     USER  ADDRESS          METHOD\n"
      "local   all          all                    scram-sha-256\n" +
      host + " all          all   127.0.0.1/32     scram-sha-256\n" + host +
      " all          all   " + o_.host + "/32  scram-sha-256\n" + host +
      " replication  all   127.0.0.1/32     scram-sha-256\n";
  for (const auto& peer : o_.replication_from) {
    for (const char* database : {" replication  all   ", " all          all   "}) {
      hba.append(host).append(database).append(peer).append("/32  scram-sha-256\n");
    }
  }
  // The data directory belongs to the run-as user: never follow a link planted in it.
  RETURN_IF_ERROR(WriteFileAtomicAs(o_.data_dir + "/tandem.conf", conf, 0600, Uid(), Gid()));
  return WriteFileAtomicAs(o_.data_dir + "/pg_hba.conf", hba, 0600, Uid(), Gid());
}

// Synchronous replication is a primary's own setting (SetSynchronous writes it with ALTER
// SYSTEM). A replica's postgresql.auto.conf may hold its old primary's (copied by a base backup
// or pg_rewind): dropped here, so it cannot come back when this server is promoted — where it
// would make every commit wait for a standby named after this server, which never comes.
Status LocalServer::WriteRoleFiles() {
  const std::string signal = o_.data_dir + "/standby.signal";
  if (!upstream_) {
    if (unlink(signal.c_str()) != 0 && errno != ENOENT) {
      return Internal("cannot remove " + signal + ": " + strerror(errno));
    }
    return Status::Ok();
  }
  RETURN_IF_ERROR(WriteFileAtomicAs(signal, "", 0600, Uid(), Gid()));
  const std::string auto_conf = o_.data_dir + "/postgresql.auto.conf";
  auto conf = ReadDataFile(auto_conf);
  if (!conf.ok()) return conf.status().code() == Code::kNotFound ? Status::Ok() : conf.status();
  bool changed = false;
  std::string kept =
      RemoveSettings(*conf, {"synchronous_standby_names", "synchronous_commit"}, &changed);
  if (!changed) return Status::Ok();
  spdlog::info(
      "PostgreSQL on {}:{} starts as a replica: dropping the synchronous settings its "
      "configuration copied from a primary",
      o_.host, o_.port);
  return WriteFileAtomicAs(auto_conf, kept, 0600, Uid(), Gid());
}

// A postmaster left running by an earlier process of ours (killed before it could stop it)
// holds the data directory. Stop it the way we would have.
Status LocalServer::StopStrayPostmaster() {
  auto pidfile = ReadFile(o_.data_dir + "/postmaster.pid");
  if (!pidfile.ok()) return Status::Ok();
  pid_t pid = static_cast<pid_t>(atol(pidfile->c_str()));
  if (!ProcessAlive(pid)) return Status::Ok();
  // A postmaster killed with its parent is a zombie until it is reaped: dead, but PostgreSQL
  // would take its lock file as held. It holds no shared memory any more.
  if (auto stat = ReadFile("/proc/" + std::to_string(pid) + "/stat"); stat.ok()) {
    size_t paren = stat->rfind(')');
    if (paren != std::string::npos && paren + 2 < stat->size() && (*stat)[paren + 2] == 'Z') {
      return Status::Ok();  // PostgreSQL rewrites the lock file once the pid is gone
    }
  }
  // Only a postmaster of this data directory, run by our user: the pid file is writable by
  // that user and pids are reused.
  auto cmd = ReadFile("/proc/" + std::to_string(pid) + "/cmdline");
  struct stat st;
  if (!cmd.ok() || cmd->find("postgres") == std::string::npos ||
      cmd->find(o_.data_dir) == std::string::npos ||
      stat(("/proc/" + std::to_string(pid)).c_str(), &st) != 0 || st.st_uid != Uid()) {
    return Status::Ok();
  }
  spdlog::warn("stopping a PostgreSQL server (pid {}) left running on {}", pid, o_.data_dir);
  kill(pid, SIGINT);
  for (int i = 0; i < 600 && ProcessAlive(pid); ++i) std::this_thread::sleep_for(50ms);
  if (ProcessAlive(pid)) {
    return FailedPrecondition("a PostgreSQL server (pid " + std::to_string(pid) +
                              ") is still running on " + o_.data_dir);
  }
  return Status::Ok();
}

std::string LocalServer::LogTail() const {
  auto log = ReadFile(LogPath());
  if (!log.ok()) return "";
  std::string s = *log;
  if (s.size() > 1500) s = s.substr(s.size() - 1500);
  return s;
}

long LocalServer::LogSize() const {
  struct stat st;
  return stat(LogPath().c_str(), &st) == 0 ? static_cast<long>(st.st_size) : 0;
}

std::string LocalServer::LogSince(long offset) const {
  FILE* f = fopen(LogPath().c_str(), "r");
  if (f == nullptr) return "";
  std::string out;
  if (fseek(f, 0, SEEK_END) == 0) {
    long end = ftell(f);
    long from = std::max(offset, end - 65536L);
    if (from < end && fseek(f, from, SEEK_SET) == 0) {
      out.resize(static_cast<size_t>(end - from));
      out.resize(fread(out.data(), 1, out.size(), f));
    }
  }
  fclose(f);
  return out;
}

Status LocalServer::Start(std::chrono::milliseconds timeout) {
  stopping_ = false;
  std::lock_guard lock(mu_);
  wanted_ = true;
  return StartUntilLocked(RealClock().Now() + timeout);
}

Status LocalServer::StartUntilLocked(MonoTime deadline) {
  // Right after a crash (of the server, or of the process that ran it) the old server's
  // backends hold its shared memory until they notice and exit; PostgreSQL then refuses to
  // start. Wait for them, within the timeout.
  Backoff backoff(std::chrono::milliseconds(50), std::chrono::seconds(1));
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - RealClock().Now());
    Status s = StartLocked(std::max(left, std::chrono::milliseconds(1000)));
    bool leftovers =
        s.message().find("pre-existing shared memory block") != std::string::npos ||
        s.message().find("lock file \"postmaster.pid\" already exists") != std::string::npos;
    if (s.ok() || stopping_ || !leftovers || RealClock().Now() >= deadline) return s;
    spdlog::info(
        "PostgreSQL on {}:{}: the previous server's processes are still exiting; "
        "retrying",
        o_.host, o_.port);
    std::this_thread::sleep_for(backoff.Next());
  }
}

Status LocalServer::StartLocked(std::chrono::milliseconds timeout) {
  if (child_ && !child_->Poll()) return Status::Ok();
  if (!PathExists(o_.data_dir + "/PG_VERSION")) {
    return FailedPrecondition("no PostgreSQL cluster in " + o_.data_dir +
                              (upstream_ ? " (InitReplica first)" : " (Init first)"));
  }
  RETURN_IF_ERROR(StopStrayPostmaster());
  RETURN_IF_ERROR(EnsureIncludeLine());
  RETURN_IF_ERROR(WriteSettings());
  RETURN_IF_ERROR(WriteRoleFiles());
  Status port = CheckPortFree(o_.host, o_.port);
  if (!port.ok()) {
    return Unavailable("PostgreSQL cannot listen on " + o_.host + ":" + std::to_string(o_.port) +
                       ": " + port.message());
  }
  // HOME is its own directory: libpq, in a replica's walreceiver, looks for a client
  // certificate under ~/.postgresql, and the run-as user may not enter ours.
  SpawnOptions so{.argv = {o_.bin_dir + "/postgres", "-D", o_.data_dir},
                  .env_extra = {{"HOME", dir_}},
                  .output_path = LogPath(),
                  .death_signal = SIGINT};
  if (ids_) so.user = o_.run_as;
  const long log_from = LogSize();
  ASSIGN_OR_RETURN(child_, Child::Spawn(so));
  std::string dsn = Dsn("postgres") + " connect_timeout=2";
  auto deadline = RealClock().Now() + timeout;
  for (int polls = 1; RealClock().Now() < deadline; ++polls) {
    if (auto e = child_->Poll()) {
      child_.reset();
      return Unavailable("PostgreSQL " + e->Describe() + " at start; its log says:\n" + LogTail());
    }
    PGPing ping = PQping(dsn.c_str());
    if (ping == PQPING_OK) {
      spdlog::info(
          "PostgreSQL running on {}:{} (pid {}){}", o_.host, o_.port, child_->pid(),
          upstream_ ? " as a replica of " + upstream_->host + ":" + std::to_string(upstream_->port)
                    : "");
      if (!upstream_) RETURN_IF_ERROR(ApplyNewPasswordLocked());
      return Status::Ok();
    }
    if (stopping_) {
      child_->Stop(SIGINT, 30s);
      child_.reset();
      return Unavailable("PostgreSQL start abandoned: the region is stopping");
    }
    // A replica rejects connections until it is consistent; if the WAL it needs for that can
    // never come, waiting longer does not help.
    if (ping == PQPING_REJECT && upstream_ && polls % 25 == 0 &&
        WalReceiverCannotContinue(LogSince(log_from))) {
      child_->Stop(SIGINT, 30s);
      child_.reset();
      return FailedPrecondition("PostgreSQL on " + o_.host + ":" + std::to_string(o_.port) +
                                " cannot become a consistent replica: its upstream cannot send "
                                "the WAL it needs; its log says:\n" +
                                LogTail());
    }
    // Crash recovery answers "rejecting connections" for as long as it takes: a live
    // postmaster that is still recovering is given the time (it would only start over). Not a
    // replica: it rejects connections until it is consistent, which may need WAL from an
    // upstream that is not there.
    if (ping == PQPING_REJECT && !upstream_ && RealClock().Now() + 50ms >= deadline) {
      deadline += std::chrono::seconds(1);
    }
    std::this_thread::sleep_for(20ms);
  }
  child_->Stop(SIGQUIT, 5s);
  child_.reset();
  return Unavailable("PostgreSQL did not accept connections within " +
                     std::to_string(timeout.count()) + " ms; its log says:\n" + LogTail());
}

Status LocalServer::ApplyNewPasswordLocked() {
  if (!PathExists(OldPasswordPath())) return Status::Ok();
  const ConnOptions opts = {{"connect_timeout", "5"}};
  if (Conn::Connect(Dsn("postgres"), opts).ok()) {  // already done (before a crash)
    unlink(OldPasswordPath().c_str());
    return Status::Ok();
  }
  ASSIGN_OR_RETURN(std::string old, ReadFile(OldPasswordPath()));
  auto c = Conn::Connect(LocalDsn("postgres", old), opts);
  if (!c.ok()) {
    return c.status().WithContext(
        "the superuser's password changed, but neither the new nor the old one is accepted");
  }
  // Local durability only: a synchronous standby that is not there must not hold this up.
  RETURN_IF_ERROR((*c)->ExecScript("SET synchronous_commit = local"));
  RETURN_IF_ERROR((*c)->ExecScript("ALTER ROLE " + QuoteIdentifier(o_.superuser) + " PASSWORD " +
                                   SqlLiteral(password_)));
  unlink(OldPasswordPath().c_str());
  spdlog::info("PostgreSQL on {}:{}: the superuser has its new password", o_.host, o_.port);
  return Status::Ok();
}

Status LocalServer::Stop() {
  stopping_ = true;
  std::lock_guard lock(mu_);
  return StopLocked();
}

Status LocalServer::StopLocked() {
  wanted_ = false;
  if (!child_) return Status::Ok();
  ExitInfo e = child_->Stop(SIGINT, 30s);  // fast shutdown: checkpoint, then exit
  spdlog::info("PostgreSQL on {}:{} stopped ({})", o_.host, o_.port, e.Describe());
  child_.reset();
  return Status::Ok();
}

// One attempt per call at most, never sleeping with mu_ held: a server that cannot start now
// (its old backends still hold shared memory, the disk is full, the port is taken) is tried
// again on a later call after a growing pause, for as long as the server is wanted. While
// another operation holds the server (a start, a rejoin, a base backup), there is nothing to do.
Status LocalServer::Supervise() {
  std::unique_lock lock(mu_, std::try_to_lock);
  if (!lock.owns_lock()) return Status::Ok();
  if (!wanted_ || stopping_) return Status::Ok();
  if (child_) {
    auto e = child_->Poll();
    if (!e) return Status::Ok();
    spdlog::error("PostgreSQL on {}:{} {}; restarting it", o_.host, o_.port, e->Describe());
    child_.reset();
  }
  if (RealClock().Now() < next_restart_) return Status::Ok();
  Status s = StartLocked(std::chrono::minutes(2));
  if (s.ok()) {
    ++restarts_;
    restart_backoff_ = Backoff(std::chrono::milliseconds(100), std::chrono::seconds(10));
    next_restart_ = {};
    return s;
  }
  Duration wait = restart_backoff_.Next();
  next_restart_ = RealClock().Now() + wait;
  return s.WithContext(
      "restarting PostgreSQL (next try in " +
      std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(wait).count()) + " ms)");
}

ServerState LocalServer::State() {
  ServerState st;
  st.restarts = restarts_.load();
  // A start or a restart holds mu_ for as long as PostgreSQL takes to come up: answer at once
  // instead of making /metrics and /readyz wait for it.
  std::unique_lock lock(mu_, std::try_to_lock);
  if (!lock.owns_lock()) {
    st.detail =
        "PostgreSQL on " + o_.host + ":" + std::to_string(o_.port) + " is being started or stopped";
    return st;
  }
  st.running = child_ && !child_->Poll() && PQping((Dsn("postgres")).c_str()) == PQPING_OK;
  st.detail = st.running
                  ? "PostgreSQL running on " + o_.host + ":" + std::to_string(o_.port)
                  : "PostgreSQL on " + o_.host + ":" + std::to_string(o_.port) + " is not running";
  return st;
}

std::string LocalServer::Dsn(const std::string& database) const {
  return LocalDsn(database, password_);
}

std::string LocalServer::LocalDsn(const std::string& database, const std::string& password) const {
  const std::string login = " port=" + std::to_string(o_.port) + " user=" + DsnQuote(o_.superuser) +
                            " password=" + DsnQuote(password) + " dbname=" + DsnQuote(database) +
                            " application_name=tandem";
  if (!socket_dir_.empty()) return "host=" + DsnQuote(socket_dir_) + login;
  return "host=" + o_.host + login + SslConninfo();
}

std::string LocalServer::SslConninfo() const {
  if (!tls()) return "";
  return " sslmode=verify-full sslrootcert=" + DsnQuote(dir_ + "/root.crt");
}

namespace {

class ExternalServer final : public Server {
 public:
  explicit ExternalServer(std::string dsn) : dsn_(std::move(dsn)) {}
  Status Init() override { return Status::Ok(); }
  Status Start(std::chrono::milliseconds) override { return Status::Ok(); }
  Status Stop() override { return Status::Ok(); }
  Status Supervise() override { return Status::Ok(); }
  ServerState State() override {
    ServerState st;
    st.running = Ping(dsn_, 2);
    st.detail = st.running ? "external PostgreSQL reachable" : "external PostgreSQL unreachable";
    return st;
  }
  // The configured connection string names its database.
  std::string Dsn(const std::string&) const override { return dsn_; }

  Status InitReplica(const Upstream&, Duration) override { return NotOurs("a base backup"); }
  Status SetUpstream(std::optional<Upstream>) override { return NotOurs("an upstream"); }
  Status SetSynchronous(const std::vector<std::string>&) override {
    return NotOurs("synchronous replication");
  }
  Result<PromoteInfo> Promote(Duration) override { return NotOurs("a promotion"); }
  Status EnsureSlot(const std::string&) override { return NotOurs("a replication slot"); }
  Result<RejoinInfo> Rejoin(const Upstream&, Duration) override { return NotOurs("a rejoin"); }
  // Reading the views works on any server (columns the role may not read come back empty).
  Result<ReplicationSample> Sample() override { return sampler_.Sample(dsn_); }

 private:
  static Status NotOurs(const std::string& what) {
    return FailedPrecondition("cannot do " + what +
                              ": an external PostgreSQL is replicated by whoever runs it");
  }

  std::string dsn_;
  ReplicationSampler sampler_;
};

}  // namespace

Result<ServerPtr> NewLocalServer(LocalServerOptions opts) {
  if (opts.data_dir.empty() || opts.data_dir[0] != '/') {
    return InvalidArgument("PostgreSQL data directory must be an absolute path");
  }
  if (opts.port <= 0 || opts.port > 65535) return InvalidArgument("PostgreSQL port out of range");
  if (opts.password.find_first_of(std::string("\0\n\r", 3)) != std::string::npos) {
    return InvalidArgument("the PostgreSQL password may not contain line breaks or NUL");
  }
  if (opts.upstream) RETURN_IF_ERROR(ValidateUpstream(*opts.upstream));
  return ServerPtr(new LocalServer(std::move(opts)));
}

Result<ServerPtr> NewExternalServer(std::string dsn) {
  if (dsn.empty()) return InvalidArgument("empty PostgreSQL connection string");
  return ServerPtr(new ExternalServer(std::move(dsn)));
}

}  // namespace tandem::pg
